// Process entry: parse options, set up logging, build the device and serve frontends.
#pragma once

namespace vgpu {

int run_main(int argc, char** argv);

}  // namespace vgpu
