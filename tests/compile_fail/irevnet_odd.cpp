// Must not compile: IRevNetDownsampling of a height of 5 (2x2 patches need even H and W).
#include <inn/inn.hpp>
#include <inn/modules/irevnet.hpp>

using Net = inn::SequenceINN<inn::Shape<3, 5, 4>, inn::IRevNetDownsampling<>>;

int main() {
    Net net;
    return 0;
}
