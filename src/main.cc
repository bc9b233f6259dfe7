#include "app/main.h"

int main(int argc, char** argv) {
  return vgpu::run_main(argc, argv);
}
