// Boost.Asio and Boost.Beast compiled once for the whole program
// (BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION): every
// other translation unit then only parses the headers, which cuts each
// Beast TU's build time by about a third (TOOLCHAIN.md §8).
#include <utility>

#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
