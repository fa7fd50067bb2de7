#pragma once
// inn: invertible neural networks as C++ types. The one header users include.

#include "core/batch_io.hpp"
#include "core/module.hpp"
#include "core/parameters.hpp"
#include "core/random.hpp"
#include "core/shape.hpp"
#include "graph/graph_inn.hpp"
#include "graph/sequence_inn.hpp"
#include "nn.hpp"
