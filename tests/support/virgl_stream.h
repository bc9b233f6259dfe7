// A virgl command-stream encoder for tests: the few commands a test needs to make a virgl context render
// something checkable (surfaces, framebuffer state, clears, a textured full-target quad). Numbers and layouts
// are virglrenderer's wire protocol (its src/virgl_protocol.h and gallium's p_defines.h, which Debian does not
// install); they are the same in 0.10.4 and 1.x.
//
//   VirglStream s;
//   s.surface(1, /*res=*/10).framebuffer(1).clear({0, 1, 0, 1});            // target 10 cleared to green
//   renderer.submit_3d(ctx, s.bytes());
//
//   s.textured_quad_pipeline(/*first_handle=*/100, /*vertex_buffer=*/11, /*texture=*/12, 64, 32).draw_quad();
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace vgpu::test {

namespace virgl {
// gallium targets, formats and bind flags (the 2D virtio formats keep their numbers in virgl).
constexpr uint32_t kPipeBuffer = 0, kPipeTexture2D = 2;
constexpr uint32_t kFormatB8G8R8X8 = 2, kFormatR32G32B32A32Float = 31, kFormatR8 = 64;
constexpr uint32_t kBindRenderTarget = 1u << 1, kBindSamplerView = 1u << 3, kBindVertexBuffer = 1u << 4;
// Commands (VIRGL_CCMD_*).
constexpr uint32_t kCcmdCreateObject = 1, kCcmdBindObject = 2, kCcmdSetViewportState = 4, kCcmdSetFramebufferState = 5,
                   kCcmdSetVertexBuffers = 6, kCcmdClear = 7, kCcmdDrawVbo = 8, kCcmdSetSamplerViews = 10,
                   kCcmdBindSamplerStates = 18, kCcmdBindShader = 31, kCcmdPipeResourceCreate = 48;
// Object types (VIRGL_OBJECT_*).
constexpr uint32_t kObjectBlend = 1, kObjectRasterizer = 2, kObjectDsa = 3, kObjectShader = 4,
                   kObjectVertexElements = 5, kObjectSamplerView = 6, kObjectSamplerState = 7, kObjectSurface = 8;
// Shader stages, clear buffers, primitives.
constexpr uint32_t kShaderVertex = 0, kShaderFragment = 1;
constexpr uint32_t kClearColor0 = 1u << 2;
constexpr uint32_t kPrimTriangleStrip = 5;
// One vertex of the quad: position (x, y, 0, 1) and texture coordinate (s, t, 0, 1), 32 bytes.
constexpr uint32_t kQuadVertexBytes = 32;
constexpr uint32_t kQuadVertices = 4;

constexpr uint32_t cmd0(uint32_t cmd, uint32_t obj, uint32_t len) {
  return cmd | obj << 8 | len << 16;
}

inline uint32_t float_bits(float f) {
  uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

// The quad's vertex data (triangle strip over the whole target, texture corners at the target's corners).
inline std::vector<std::byte> quad_vertices() {
  const std::array<float, 32> v = {-1, -1, 0, 1, 0, 0, 0, 1, 1, -1, 0, 1, 1, 0, 0, 1,
                                   -1, 1,  0, 1, 0, 1, 0, 1, 1, 1,  0, 1, 1, 1, 0, 1};
  std::vector<std::byte> out(sizeof(v));
  std::memcpy(out.data(), v.data(), sizeof(v));
  return out;
}
}  // namespace virgl

class VirglStream {
 public:
  [[nodiscard]] std::span<const std::byte> bytes() const { return std::as_bytes(std::span(words_)); }
  [[nodiscard]] const std::vector<uint32_t>& words() const { return words_; }

  // A BGRX colour surface on level 0 of texture `res`.
  VirglStream& surface(uint32_t handle, uint32_t res) {
    return put(
        {virgl::cmd0(virgl::kCcmdCreateObject, virgl::kObjectSurface, 5), handle, res, virgl::kFormatB8G8R8X8, 0, 0});
  }
  // `surface` as the only colour buffer, no depth.
  VirglStream& framebuffer(uint32_t surface_handle) {
    return put({virgl::cmd0(virgl::kCcmdSetFramebufferState, 0, 3), 1, 0, surface_handle});
  }
  // Clears the bound colour buffer to rgba.
  VirglStream& clear(std::array<float, 4> rgba) {
    put({virgl::cmd0(virgl::kCcmdClear, 0, 8), virgl::kClearColor0});
    for (float c : rgba) words_.push_back(virgl::float_bits(c));
    return put({0, 0, 0});  // depth (a double), stencil
  }
  // A context-made buffer the guest later claims as a HOST3D blob (PIPE_RESOURCE_CREATE: target, format, bind,
  // width, height, depth, array_size, last_level, nr_samples, flags, blob_id), persistently mapped and coherent.
  VirglStream& pipe_buffer(uint32_t bytes, uint32_t blob_id) {
    constexpr uint32_t kMapPersistentCoherent = (1u << 1) | (1u << 2);  // bit 0 is Y_0_TOP
    return put({virgl::cmd0(virgl::kCcmdPipeResourceCreate, 0, 11), virgl::kPipeBuffer, virgl::kFormatR8,
                virgl::kBindVertexBuffer, bytes, 1, 1, 1, 0, 0, kMapPersistentCoherent, blob_id});
  }

  // Everything a draw of a textured quad over a width x height target needs, bound: blend (all channels
  // written), depth/stencil off, rasterizer, a pass-through vertex shader, a fragment shader that samples
  // texture unit 0 (nearest, clamped), the vertex layout, the vertex buffer (quad_vertices() in resource
  // `vertex_buffer`), a sampler view of `texture` on unit 0, the viewport. Object handles first_handle..+8.
  VirglStream& textured_quad_pipeline(uint32_t first_handle, uint32_t vertex_buffer, uint32_t texture, uint32_t width,
                                      uint32_t height) {
    using namespace virgl;
    const uint32_t blend = first_handle, dsa = first_handle + 1, rs = first_handle + 2, vs = first_handle + 3,
                   fs = first_handle + 4, ve = first_handle + 5, view = first_handle + 6, sampler = first_handle + 7;
    // Blend: no independent blend, no logic op; rt 0 writes RGBA (colormask at bit 27) without blending.
    put({cmd0(kCcmdCreateObject, kObjectBlend, 11), blend, 0, 0, 0xfu << 27, 0, 0, 0, 0, 0, 0, 0});
    put({cmd0(kCcmdBindObject, kObjectBlend, 1), blend});
    put({cmd0(kCcmdCreateObject, kObjectDsa, 5), dsa, 0, 0, 0, 0});
    put({cmd0(kCcmdBindObject, kObjectDsa, 1), dsa});
    // Rasterizer: depth clip and half-pixel centres (GL rules); point size and line width 1.
    put({cmd0(kCcmdCreateObject, kObjectRasterizer, 9), rs, (1u << 1) | (1u << 29), float_bits(1.0f), 0, 0,
         float_bits(1.0f), 0, 0, 0});
    put({cmd0(kCcmdBindObject, kObjectRasterizer, 1), rs});
    shader(vs, kShaderVertex,
           "VERT\nDCL IN[0]\nDCL IN[1]\nDCL OUT[0], POSITION\nDCL OUT[1], GENERIC[0]\n"
           "  0: MOV OUT[0], IN[0]\n  1: MOV OUT[1], IN[1]\n  2: END\n");
    shader(fs, kShaderFragment,
           "FRAG\nDCL IN[0], GENERIC[0], PERSPECTIVE\nDCL OUT[0], COLOR\nDCL SAMP[0]\nDCL SVIEW[0], 2D, FLOAT\n"
           "  0: TEX OUT[0], IN[0], SAMP[0], 2D\n  1: END\n");
    // Two float4 attributes from buffer 0: position at 0, texture coordinate at 16.
    put({cmd0(kCcmdCreateObject, kObjectVertexElements, 9), ve, 0, 0, 0, kFormatR32G32B32A32Float, 16, 0, 0,
         kFormatR32G32B32A32Float});
    put({cmd0(kCcmdBindObject, kObjectVertexElements, 1), ve});
    put({cmd0(kCcmdSetVertexBuffers, 0, 3), kQuadVertexBytes, 0, vertex_buffer});
    // Sampler view: layers 0..0, levels 0..0, identity swizzle (R=0, G=1, B=2, A=3 in 3-bit fields).
    put({cmd0(kCcmdCreateObject, kObjectSamplerView, 6), view, texture, kFormatB8G8R8X8, 0, 0,
         0u | 1u << 3 | 2u << 6 | 3u << 9});
    put({cmd0(kCcmdSetSamplerViews, 0, 3), kShaderFragment, 0, view});
    // Sampler: clamp to edge on s/t/r (2), nearest min/mag filters (0), no mipmapping (2 at bit 11).
    put({cmd0(kCcmdCreateObject, kObjectSamplerState, 9), sampler, 2u | 2u << 3 | 2u << 6 | 2u << 11, 0, 0, 0, 0, 0, 0,
         0});
    put({cmd0(kCcmdBindSamplerStates, 0, 3), kShaderFragment, 0, sampler});
    // Viewport 0: scale (w/2, h/2, 0.5), translate (w/2, h/2, 0.5).
    const float hw = static_cast<float>(width) / 2, hh = static_cast<float>(height) / 2;
    return put({cmd0(kCcmdSetViewportState, 0, 7), 0, float_bits(hw), float_bits(hh), float_bits(0.5f), float_bits(hw),
                float_bits(hh), float_bits(0.5f)});
  }
  // DRAW_VBO of the quad: start 0, 4 vertices, triangle strip, not indexed, one instance, indices 0..3.
  VirglStream& draw_quad() {
    return put({virgl::cmd0(virgl::kCcmdDrawVbo, 0, 12), 0, virgl::kQuadVertices, virgl::kPrimTriangleStrip, 0, 1, 0, 0,
                0, 0, 0, virgl::kQuadVertices - 1, 0});
  }

 private:
  VirglStream& put(std::initializer_list<uint32_t> w) {
    words_.insert(words_.end(), w);
    return *this;
  }
  // CREATE_OBJECT SHADER: handle, type, the text's length in bytes (with its NUL), a token budget for the
  // library's TGSI parser, no stream output, then the text padded to whole words.
  void shader(uint32_t handle, uint32_t type, std::string_view text) {
    const auto text_bytes = static_cast<uint32_t>(text.size() + 1);
    const uint32_t text_words = (text_bytes + 3) / 4;
    put({virgl::cmd0(virgl::kCcmdCreateObject, virgl::kObjectShader, 5 + text_words), handle, type, text_bytes, 300,
         0});
    const size_t at = words_.size();
    words_.resize(at + text_words, 0);
    std::memcpy(words_.data() + at, text.data(), text.size());
    put({virgl::cmd0(virgl::kCcmdBindShader, 0, 2), handle, type});
  }

  std::vector<uint32_t> words_;
};

}  // namespace vgpu::test
