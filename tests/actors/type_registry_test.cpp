#include "actors/type_registry.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <cxxabi.h>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/message.hpp>
#include <caf/replies_to.hpp>
#include <caf/send.hpp>
#include <caf/type_nr.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/ai_actor.hpp"
#include "actors/conversation_actor.hpp"
#include "actors/directory_actor.hpp"
#include "actors/errors.hpp"
#include "actors/persistence_actor.hpp"
#include "actors/session_actor.hpp"

// The registry is the one place where the types that cross nodes are named
// for CAF's serialization. A type missing there compiles fine and fails only
// when a message holding it goes to another node (CAF cannot name it, and
// the message never arrives). These tests walk every typed interface of the
// actors, so a message type added to an interface but not registered fails
// here, not in a cluster.

using namespace chat;

namespace {

struct registry_config : caf::actor_system_config {
  registry_config() {
    register_message_types(*this);
  }
};

/// The type a message holds for `T` (atom constants travel as atom_value).
template<class T>
using element_t = caf::detail::strip_and_convert_t<T>;

template<class T>
bool is_registered(caf::actor_system& sys) {
  using type = element_t<T>;
  if (caf::type_nr<type>::value != 0) // built into CAF
    return true;
  return sys.types().make_value(typeid(type)) != nullptr;
}

/// Serializes `msg` as a message to another node would be, reads it back,
/// and compares the two as text.
void round_trip(caf::actor_system& sys, const caf::message& msg) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto msg_copy = msg;
  auto err = sink(msg_copy);
  REQUIRE_MESSAGE(!err, "serialize " << to_string(msg) << ": " << sys.render(err));
  caf::binary_deserializer source{sys, buf};
  caf::message back;
  err = source(back);
  REQUIRE_MESSAGE(!err, "deserialize " << to_string(msg) << ": " << sys.render(err));
  CHECK(to_string(back) == to_string(msg));
}

/// The C++ name of `T`, for the failure message.
template<class T>
std::string type_name() {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name{
      abi::__cxa_demangle(typeid(T).name(), nullptr, nullptr, &status), std::free};
  return status == 0 ? name.get() : typeid(T).name();
}

template<class T>
void check_registered(caf::actor_system& sys, const std::string& interface) {
  auto what = interface + ": " + type_name<element_t<T>>()
              + " is not registered (actors/type_registry.cpp)";
  CHECK_MESSAGE(is_registered<T>(sys), what);
}

template<class... Ts>
void check_elements(caf::actor_system& sys, const char* interface) {
  (check_registered<Ts>(sys, interface), ...);
  // A sample of the message: default values, every element present.
  round_trip(sys, caf::make_message(Ts{}...));
}

template<class... Ins, class... Outs>
void check_signature(caf::actor_system& sys, const char* interface,
                     caf::typed_mpi<caf::detail::type_list<Ins...>, caf::output_tuple<Outs...>>*) {
  check_elements<Ins...>(sys, interface);
  if constexpr (!(std::is_void_v<Outs> || ...))
    check_elements<Outs...>(sys, interface);
}

template<class... Sigs>
void check_signatures(caf::actor_system& sys, const char* interface,
                      caf::detail::type_list<Sigs...>) {
  (check_signature(sys, interface, static_cast<Sigs*>(nullptr)), ...);
}

template<class Handle>
void check_interface(caf::actor_system& sys, const char* name) {
  check_signatures(sys, name, typename Handle::signatures{});
}

} // namespace

TEST_CASE("type registry: every type in the actors' typed interfaces is registered and "
          "survives serialization") {
  registry_config cfg;
  caf::actor_system sys{cfg};
  // What crosses nodes: sessions <-> conversations, directories <-> each
  // other. The others are checked too: they may cross nodes tomorrow.
  check_interface<conversation_actor>(sys, "conversation_actor");
  check_interface<session_events>(sys, "session_events");
  check_interface<session_actor>(sys, "session_actor");
  check_interface<directory_actor>(sys, "directory_actor");
  check_interface<reply_sink>(sys, "reply_sink");
  check_interface<ai_actor>(sys, "ai_actor");
  check_interface<persistence_actor>(sys, "persistence_actor");
}

TEST_CASE("type registry: a typed handle in a message survives serialization") {
  registry_config cfg;
  caf::actor_system sys{cfg};
  auto events = sys.spawn([]() -> session_events::behavior_type {
    return {[](event_atom, const std::string&, const std::string&) {},
            [](completed_atom, const std::string&, int64_t) {}};
  });
  auto msg = caf::make_message(subscribe_atom::value, std::string{"alice"}, int64_t{3}, events);
  round_trip(sys, msg);
  caf::anon_send_exit(events, caf::exit_reason::user_shutdown);
}

TEST_CASE("type registry: the error categories that cross nodes are rendered") {
  registry_config cfg;
  caf::actor_system sys{cfg};
  CHECK(sys.render(conversation_moved()) == "conversation_moved");
  CHECK(sys.render(make_chat_error(protocol::error_code::not_found, "gone"))
        == "chat_error(not_found, gone)");
}
