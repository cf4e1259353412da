#include "harness/cli/cli.h"

int main(int argc, char** argv) { return kah::cli_main(argc, argv); }
