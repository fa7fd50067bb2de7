// Negative control of the compile-fail machinery: this compiles (with the include paths that
// inn::inn brings), so its compile-fail test must report "compiled, but it must not".
#include <Eigen/Core>

int main() { return static_cast<int>(Eigen::Vector2d::Zero().size()) - 2; }
