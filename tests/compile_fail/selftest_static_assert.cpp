// Self-test of the compile-fail machinery: this must fail with the message below.
static_assert(sizeof(int) == 0, "inn: sample compile-fail case");

int main() { return 0; }
