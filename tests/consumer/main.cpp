// Uses the installed headers and the dependencies that inn::inn brings (Eigen here).
#include <inn/inn.hpp>

#include <Eigen/Core>
#include <iostream>

int main() {
    constexpr auto n = inn::Shape<3, 4>::size;
    static_assert(n == 12);
    Eigen::Matrix<double, 2, Eigen::Dynamic> x = Eigen::MatrixXd::Ones(2, n);
    std::cout << "inn consumer: Shape<3, 4>::size = " << n << ", sum = " << x.sum() << '\n';
    return x.sum() == 2.0 * n ? 0 : 1;
}
