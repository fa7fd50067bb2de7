// GaussianMixtureModel given three of its four conditions (w, mu, U, i): the message gives both
// counts, not "needs at least one condition".
#include <inn/inn.hpp>
#include <inn/modules/gaussian_mixture.hpp>

struct x : inn::InputNode<inn::Shape<4>> {};
struct w : inn::ConditionNode<inn::Shape<3>> {};
struct mu : inn::ConditionNode<inn::Shape<3, 4>> {};
struct U : inn::ConditionNode<inn::Shape<3, 10>> {};
struct gmm : inn::Node<inn::GaussianMixtureModel, x, inn::conditions<w, mu, U>> {};
struct z : inn::OutputNode<gmm> {};
using Net = inn::GraphINN<x, w, mu, U, gmm, z>;

int main() {
    Net net;
    return 0;
}
