// Must not compile: GaussianMixtureModel's component index declared as FrEIA declares it,
// a condition of dims (0,). Here it is one value per sample: Shape<1>.
#include <inn/inn.hpp>
#include <inn/modules/gaussian_mixture.hpp>

struct x : inn::InputNode<inn::Shape<4>> {};
struct w : inn::ConditionNode<inn::Shape<3>> {};
struct mu : inn::ConditionNode<inn::Shape<3, 4>> {};
struct U : inn::ConditionNode<inn::Shape<3, 10>> {};
struct i : inn::ConditionNode<inn::Shape<0>> {};  // FrEIA: Ff.ConditionNode(0)
struct gmm : inn::Node<inn::GaussianMixtureModel, x, inn::conditions<w, mu, U, i>> {};
struct z : inn::OutputNode<gmm> {};
using Net = inn::GraphINN<x, w, mu, U, i, gmm, z>;

int main() {
    Net net;
    return 0;
}
