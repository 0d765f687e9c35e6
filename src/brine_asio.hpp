// The one way brine includes Asio.
//
// Asio decides between aligned_alloc/free and operator new/delete for its handler memory by
// looking at _GLIBCXX_HAVE_ALIGNED_ALLOC, which exists only once some libstdc++ header was
// included. A file that includes <asio.hpp> after only C headers chooses differently from one that
// includes it after <algorithm>, and Asio's thread-local handler cache then frees with one what
// the other allocated (AddressSanitizer: alloc-dealloc-mismatch). Including <cstdlib> first makes
// every file choose alike.
#pragma once

#include <cstdlib>

#include <asio.hpp>
