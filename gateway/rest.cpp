#include "gateway/rest.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/sec.hpp>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "actors/errors.hpp"
#include "common/ids.hpp"
#include "protocol/codec.hpp"

namespace chat::gateway {

namespace {

using namespace std::chrono_literals;

constexpr auto rest_timeout = 30s;

/// Asks an actor from outside the actor world without blocking: a one-shot
/// actor makes the request and hands the answer to `ok` / `fail`, which must
/// not block either (they only post to a connection).
template<class Handle, class Ok, class Fail, class... Ts>
void ask(caf::actor_system& sys, const Handle& dest, Ok ok, Fail fail, Ts... xs) {
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(dest, rest_timeout, xs...).then(ok, [=](caf::error& err) { fail(err); });
  });
}

http_reply unavailable() {
  return rest_error(503, "unavailable", "service temporarily unavailable");
}

http_reply not_found() {
  return rest_error(404, "not_found", "conversation not found");
}

http_reply from_error(const caf::error& err) {
  if (err == caf::sec::invalid_argument) // e.g. a cursor we did not make
    return rest_error(400, "bad_request", "invalid parameter");
  auto f = to_error_frame(err);
  switch (f.code) {
    case protocol::error_code::not_found:
      return not_found();
    case protocol::error_code::bad_request:
      return rest_error(400, "bad_request", f.message);
    default:
      return unavailable();
  }
}

std::string models_body(const model_catalog& models) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w{buf};
  w.StartObject();
  w.Key("models");
  w.StartArray();
  for (auto& m : models.models) {
    w.StartObject();
    w.Key("id");
    w.String(m.name.c_str());
    w.Key("provider");
    w.String(m.provider.c_str());
    w.EndObject();
  }
  w.EndArray();
  if (!models.models.empty()) {
    w.Key("default");
    w.String(models.models.front().name.c_str());
  }
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

void list_conversations(const gateway_services& s, const target& t, const std::string& user,
                        reply_fn reply) {
  bool ok = true;
  auto limit = int_param(t, "limit", 1, 200, ok);
  if (!ok)
    return reply(rest_error(400, "bad_request", "limit must be 1..200"));
  auto before = t.param("before").value_or("");
  ask(
      *s.system, s.store,
      [=](conversation_page& page) {
        reply({200, protocol::encode_conversation_list(page)});
      },
      [=](const caf::error& err) { reply(from_error(err)); }, list_conv_atom::value, user, before,
      static_cast<int32_t>(limit.value_or(50)));
}

void list_messages(const gateway_services& s, const target& t, const std::string& user,
                   const std::string& id, reply_fn reply) {
  bool ok_after = true;
  bool ok_limit = true;
  auto after = int_param(t, "afterSeq", 0, INT64_MAX, ok_after);
  auto limit = int_param(t, "limit", 1, 500, ok_limit);
  if (!ok_after)
    return reply(rest_error(400, "bad_request", "afterSeq must be >= 0"));
  if (!ok_limit)
    return reply(rest_error(400, "bad_request", "limit must be 1..500"));
  if (!looks_like_uuid(id))
    return reply(not_found());
  ask(
      *s.system, s.store,
      [=](message_page& page) {
        if (!page.found)
          return reply(not_found());
        reply({200, protocol::encode_message_list(page)});
      },
      [=](const caf::error& err) { reply(from_error(err)); }, history_atom::value, user, id,
      after.value_or(0), static_cast<int32_t>(limit.value_or(100)));
}

// Deleting goes through the conversation actor: it cancels a reply in
// progress and stops, so nothing writes to the conversation afterwards.
void delete_conversation(const gateway_services& s, const std::string& user, const std::string& id,
                         reply_fn reply) {
  if (!looks_like_uuid(id))
    return reply(not_found());
  auto sys = s.system;
  ask(
      *sys, s.directory,
      [=](conversation_actor conv) {
        ask(
            *sys, conv,
            [=](bool removed) {
              reply(removed ? http_reply{204, {}, {}} : not_found());
            },
            [=](const caf::error& err) { reply(from_error(err)); }, delete_conv_atom::value, user);
      },
      [=](const caf::error& err) { reply(from_error(err)); }, lookup_atom::value, id);
}

} // namespace

http_reply rest_error(unsigned status, const char* code, std::string message) {
  return {status, protocol::encode_rest_error(code, message)};
}

void handle_rest(const gateway_services& s, const std::string& method, const target& t,
                 const std::string& user, reply_fn reply) {
  auto seg = split_path(t.path); // "api", "v1", ...
  if (seg.size() == 3 && seg[2] == "models") {
    if (method != "GET")
      return reply(rest_error(405, "bad_request", "method not allowed"));
    return reply({200, models_body(*s.session.models)});
  }
  if (seg.size() >= 3 && seg[2] == "conversations") {
    if (seg.size() == 3 && method == "GET")
      return list_conversations(s, t, user, std::move(reply));
    if (seg.size() == 4 && method == "DELETE")
      return delete_conversation(s, user, std::string{seg[3]}, std::move(reply));
    if (seg.size() == 5 && seg[4] == "messages" && method == "GET")
      return list_messages(s, t, user, std::string{seg[3]}, std::move(reply));
    if (seg.size() <= 5)
      return reply(rest_error(405, "bad_request", "method not allowed"));
  }
  reply(rest_error(404, "not_found", "no such endpoint"));
}

http_reply healthz_reply(const gateway_services& s) {
  if (!s.health || s.health->healthy())
    return {200, R"({"status":"ok"})"};
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w{buf};
  w.StartObject();
  w.Key("status");
  w.String("failed");
  w.Key("dead");
  auto dead = s.health->dead();
  w.String(dead.c_str(), static_cast<rapidjson::SizeType>(dead.size()));
  w.EndObject();
  return {503, buf.GetString()};
}

void handle_readyz(const gateway_services& s, bool draining, reply_fn reply) {
  if (s.health && !s.health->healthy())
    return reply(healthz_reply(s));
  if (draining)
    return reply({503, R"({"status":"draining"})"});
  if (s.cluster_joined && !s.cluster_joined->load())
    return reply({503, R"({"status":"joining"})"});
  ask(
      *s.system, s.store,
      [=](bool ok) {
        reply(ok ? http_reply{200, R"({"status":"ready"})"}
                 : http_reply{503, R"({"status":"database unreachable"})"});
      },
      [=](const caf::error&) {
        reply({503, R"({"status":"database unreachable"})"});
      },
      db_ping_atom::value);
}

} // namespace chat::gateway
