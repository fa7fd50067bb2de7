#pragma once

// Low-level reader and writer for the safetensors format
// (https://github.com/huggingface/safetensors), independent of any network type. One concept per
// header; this one brings them all:
//
//   io/dtype.hpp   element types, byte order, checked conversion of elements
//   io/header.hpp  the JSON header: parsing and validation (parse_header, tensor_info)
//   io/reader.hpp  safetensors_file: a file in memory and checked access to its tensors
//   io/writer.hpp  make_tensor, serialize_safetensors, write_safetensors
//
// Everything but io/dtype.hpp needs nlohmann/json: link the CMake target inn::io.

#include <inn/io/dtype.hpp>
#include <inn/io/error.hpp>
#include <inn/io/header.hpp>
#include <inn/io/reader.hpp>
#include <inn/io/writer.hpp>
