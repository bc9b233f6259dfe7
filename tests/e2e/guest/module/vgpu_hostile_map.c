// SPDX-License-Identifier: GPL-2.0
/*
 * vgpu_hostile_map: makes the guest's own virtio-gpu driver send the MAP_BLOB and UNMAP_BLOB requests a hostile
 * guest would, for the e2e test of host-visible memory (venus-hostile --offsets, run-3d.sh's venus case).
 * Userspace cannot choose where a blob is mapped in the host-visible window: the kernel's drm_mm picks the
 * offset and passes it to virtio_gpu_cmd_map(vgdev, objs, offset). A kprobe on that function rewrites the
 * offset (the third argument, %rdx on x86-64) while `mode` asks for it, and one on virtio_gpu_cmd_unmap(vgdev,
 * bo) skips the call, so that the resource is unreferenced while the device still has it mapped. The driver
 * itself is untouched and goes on as it would after any error response.
 *
 *   insmod vgpu_hostile_map.ko; echo 1 > /sys/module/vgpu_hostile_map/parameters/mode; ...; rmmod vgpu_hostile_map
 *
 * mode (read-write):
 *   0 off        maps pass untouched; each one's offset is remembered as last_offset
 *   1 unaligned  offset + 0x800: not aligned to a page (nor to blob_alignment)
 *   2 outside    1 << 40: past the end of any host-visible window (the device caps it at 64 GiB)
 *   3 wrap       0xfffffffffffff000: offset + length wraps around 2^64
 *   4 overlap    last_offset: on top of a mapping the device made and still holds
 *   5 skip-unmap maps untouched; virtio_gpu_cmd_unmap returns at once (RESOURCE_UNREF of a mapped blob follows)
 * rewritten, skipped (read-only): how many maps were rewritten and unmaps skipped since loading.
 *
 * Built against the guest kernel's headers by tests/e2e/build-guest-module.sh; x86-64 only.
 */
#include <linux/atomic.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/ptrace.h>

#ifndef CONFIG_X86_64
#error "vgpu_hostile_map reads the third argument from %rdx: x86-64 only"
#endif

enum { MODE_OFF, MODE_UNALIGNED, MODE_OUTSIDE, MODE_WRAP, MODE_OVERLAP, MODE_SKIP_UNMAP, MODE_COUNT };

static int mode;
static unsigned long long last_offset;
static int rewritten;
static int skipped;

static int mode_set(const char *val, const struct kernel_param *kp)
{
	int m, ret = kstrtoint(val, 0, &m);

	if (ret)
		return ret;
	if (m < 0 || m >= MODE_COUNT)
		return -EINVAL;
	WRITE_ONCE(mode, m);
	return 0;
}

static const struct kernel_param_ops mode_ops = {
	.set = mode_set,
	.get = param_get_int,
};
module_param_cb(mode, &mode_ops, &mode, 0644);
MODULE_PARM_DESC(mode, "0 off, 1 unaligned, 2 outside, 3 wrap, 4 overlap, 5 skip-unmap");
module_param(last_offset, ullong, 0444);
MODULE_PARM_DESC(last_offset, "offset of the last map passed untouched");
module_param(rewritten, int, 0444);
MODULE_PARM_DESC(rewritten, "maps whose offset was rewritten");
module_param(skipped, int, 0444);
MODULE_PARM_DESC(skipped, "unmaps skipped");

/* virtio_gpu_cmd_map(struct virtio_gpu_device *, struct virtio_gpu_object_array *, uint64_t offset) */
static int map_pre(struct kprobe *p, struct pt_regs *regs)
{
	const u64 offset = regs->dx;
	u64 to;

	switch (READ_ONCE(mode)) {
	case MODE_UNALIGNED:
		to = offset + 0x800;
		break;
	case MODE_OUTSIDE:
		to = 1ULL << 40;
		break;
	case MODE_WRAP:
		to = 0xfffffffffffff000ULL;
		break;
	case MODE_OVERLAP:
		to = READ_ONCE(last_offset);
		break;
	default:
		WRITE_ONCE(last_offset, offset);
		return 0;
	}
	regs->dx = to;
	WRITE_ONCE(rewritten, READ_ONCE(rewritten) + 1);
	pr_info("vgpu_hostile_map: MAP_BLOB offset 0x%llx sent as 0x%llx\n", offset, to);
	return 0;
}

/* Where a skipped virtio_gpu_cmd_unmap goes instead: straight back to its caller (the return address is still
 * on the stack), as the kernel's own error injection does. */
static noinline notrace void vgpu_hostile_return(void)
{
	barrier();
}

/* virtio_gpu_cmd_unmap(struct virtio_gpu_device *, struct virtio_gpu_object *) */
static int unmap_pre(struct kprobe *p, struct pt_regs *regs)
{
	if (READ_ONCE(mode) != MODE_SKIP_UNMAP)
		return 0;
	WRITE_ONCE(skipped, READ_ONCE(skipped) + 1);
	pr_info("vgpu_hostile_map: UNMAP_BLOB skipped\n");
	instruction_pointer_set(regs, (unsigned long)vgpu_hostile_return);
	return 1; /* the instruction pointer changed: no single-step */
}

static struct kprobe map_probe = {
	.symbol_name = "virtio_gpu_cmd_map",
	.pre_handler = map_pre,
};
static struct kprobe unmap_probe = {
	.symbol_name = "virtio_gpu_cmd_unmap",
	.pre_handler = unmap_pre,
};

static int __init vgpu_hostile_map_init(void)
{
	int ret = register_kprobe(&map_probe);

	if (ret) {
		pr_err("vgpu_hostile_map: no kprobe on virtio_gpu_cmd_map (virtio_gpu not loaded?): %d\n", ret);
		return ret;
	}
	ret = register_kprobe(&unmap_probe);
	if (ret) {
		pr_err("vgpu_hostile_map: no kprobe on virtio_gpu_cmd_unmap: %d\n", ret);
		unregister_kprobe(&map_probe);
		return ret;
	}
	pr_info("vgpu_hostile_map: probes on virtio_gpu_cmd_map and virtio_gpu_cmd_unmap\n");
	return 0;
}

static void __exit vgpu_hostile_map_exit(void)
{
	unregister_kprobe(&unmap_probe);
	unregister_kprobe(&map_probe);
}

module_init(vgpu_hostile_map_init);
module_exit(vgpu_hostile_map_exit);
MODULE_DESCRIPTION("vhost-gpu e2e: hostile MAP_BLOB offsets and skipped UNMAP_BLOBs from the virtio-gpu driver");
MODULE_LICENSE("GPL");
