// The entry point of the kah_layer_check_* executables (cmake/layers.cmake): they
// exist to be linked, never to be run.
int main() { return 0; }
