#include "actors/directory_actor.hpp"

#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/openssl/manager.hpp>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/errors.hpp"
#include "actors/placement.hpp"
#include "common/ids.hpp"
#include "common/log.hpp"

namespace chat {

namespace {

using namespace std::chrono_literals;

/// How long a forwarded lookup, or connecting to another node, may take.
constexpr auto remote_timeout = 10s;

/// Another member's directory, as this node knows it.
struct remote_directory {
  std::string address;    ///< host:port of its cluster port
  directory_actor handle; ///< once connected
  bool connecting = false;
  /// Lookups waiting for the connection.
  std::vector<std::pair<std::string, caf::typed_response_promise<conversation_actor>>> waiting;
  /// Lookups asked of it and not answered yet, by key: if it goes (its
  /// node died or froze, the link dropped) they fail at once instead of
  /// waiting for the remote timeout, and the caller tries again.
  std::unordered_map<uint64_t, caf::typed_response_promise<conversation_actor>> asked;
};

struct directory_state {
  conversation_config cfg;
  /// Live conversation actors by id that this node serves. An entry goes
  /// when its actor stops, or when a new view places the conversation on
  /// another node (the actor then hands over and stops).
  std::unordered_map<std::string, conversation_actor> live;
  /// Every conversation actor here, serving or handing over, by address.
  std::unordered_map<caf::actor_addr, std::string> ids;
  /// This process in the cluster; empty on a single node.
  std::string self_id;
  cluster_members members;
  std::unordered_map<std::string, remote_directory> remotes; // by process id
  uint64_t next_ask = 1;

  static inline const char* name = "directory";
};

using directory = directory_actor::stateful_pointer<directory_state>;

void track(directory self, const std::string& id, const conversation_actor& conv) {
  self->state.live.emplace(id, conv);
  self->state.ids.emplace(conv.address(), id);
  self->monitor(conv);
}

conversation_actor serve_local(directory self, const std::string& id) {
  auto& st = self->state;
  if (auto i = st.live.find(id); i != st.live.end())
    return i->second;
  auto conv = spawn_conversation(self->system(), id, st.cfg);
  track(self, id, conv);
  return conv;
}

/// This node owns `id` (or there is no cluster).
bool owns(directory self, const std::string& id) {
  auto& st = self->state;
  if (st.self_id.empty() || st.members.empty())
    return true;
  auto owner = owner_of(id, st.members);
  return owner.empty() || owner == st.self_id;
}

caf::error unavailable() {
  return make_chat_error(protocol::error_code::unavailable,
                         "conversation temporarily unavailable, please retry");
}

/// The promise of lookup `key` asked of `process_id`, once: empty when it
/// was answered already (failed when that member's directory went).
std::optional<caf::typed_response_promise<conversation_actor>>
take_asked(directory self, const std::string& process_id, uint64_t key) {
  auto r = self->state.remotes.find(process_id);
  if (r == self->state.remotes.end())
    return std::nullopt;
  auto i = r->second.asked.find(key);
  if (i == r->second.asked.end())
    return std::nullopt;
  auto rp = std::move(i->second);
  r->second.asked.erase(i);
  return rp;
}

/// Asks the owner's directory; it answers with its conversation actor.
void ask_remote(directory self, const std::string& process_id, const std::string& id,
                caf::typed_response_promise<conversation_actor> rp) {
  auto& st = self->state;
  auto& r = st.remotes[process_id];
  auto key = st.next_ask++;
  r.asked.emplace(key, rp);
  self->request(r.handle, remote_timeout, lookup_local_atom::value, id)
      .then(
          [=](conversation_actor& conv) {
            if (auto rp = take_asked(self, process_id, key))
              rp->deliver(std::move(conv));
          },
          [=](caf::error& err) {
            if (auto rp = take_asked(self, process_id, key)) {
              log::warn("remote_lookup_failed",
                        {{"conversationId", id}, {"error", to_string(err)}});
              rp->deliver(unavailable());
            }
          });
}

/// Fails the lookups waiting for or asked of a member that is gone.
void fail_waiting(remote_directory& r) {
  for (auto& [id, rp] : r.waiting)
    rp.deliver(unavailable());
  r.waiting.clear();
  for (auto& [key, rp] : r.asked)
    rp.deliver(unavailable());
  r.asked.clear();
}

/// A member's directory is reachable: lookups waiting for it go.
void adopt(directory self, const std::string& process_id, const directory_actor& peer) {
  auto& r = self->state.remotes[process_id];
  if (r.handle == peer)
    return;
  if (r.handle)
    self->demonitor(r.handle.address());
  r.handle = peer;
  self->monitor(r.handle);
  auto waiting = std::move(r.waiting);
  r.waiting.clear();
  for (auto& [id, rp] : waiting)
    ask_remote(self, process_id, id, rp);
}

/// Whether this node opens the link to member `process_id`: of two
/// members, the one with the smaller process id does, and introduces its
/// directory (hello_atom). When both connected to each other at once, CAF
/// kept one of the two connections and dropped the proxies of the other,
/// both reconnected a second later and crossed again: the link flapped for
/// seconds (seen with three TLS nodes).
bool opens_link(directory self, const std::string& process_id) {
  return self->state.self_id < process_id;
}

/// How long after a link dropped (or the view named a member) this node
/// connects: the opening side soon; the other side only as a fallback, if
/// no hello came by then.
std::chrono::seconds reconnect_delay(directory self, const std::string& process_id) {
  return opens_link(self, process_id) ? 1s : 5s;
}

/// Connects to a member's directory through CAF's middleman, without
/// blocking (the middleman actor answers when the connection is up).
void connect(directory self, const std::string& process_id) {
  auto& r = self->state.remotes[process_id];
  if (r.connecting || r.handle || !self->system().has_middleman())
    return;
  auto colon = r.address.rfind(':');
  if (colon == std::string::npos)
    return;
  auto host = r.address.substr(0, colon);
  auto port = static_cast<uint16_t>(std::stoul(r.address.substr(colon + 1)));
  r.connecting = true;
  // With mutual TLS the openssl manager's actor connects (same interface).
  auto& sys = self->system();
  auto mm = sys.has_openssl_manager() ? sys.openssl_manager().actor_handle()
                                      : sys.middleman().actor_handle();
  self->request(mm, remote_timeout, caf::connect_atom::value, host, port)
      .then(
          [=](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>&) {
            auto i = self->state.remotes.find(process_id);
            if (i == self->state.remotes.end())
              return; // gone from the view meanwhile
            auto& r = i->second;
            r.connecting = false;
            if (!ptr) {
              fail_waiting(r);
              return;
            }
            log::info("cluster_peer_connected", {{"process", process_id}, {"address", r.address}});
            auto peer = caf::actor_cast<directory_actor>(ptr);
            adopt(self, process_id, peer);
            self->send(peer, hello_atom::value, self->state.self_id,
                       caf::actor_cast<caf::actor>(self));
          },
          [=](caf::error& err) {
            auto i = self->state.remotes.find(process_id);
            if (i == self->state.remotes.end())
              return;
            i->second.connecting = false;
            log::warn("cluster_peer_unreachable", {{"process", process_id},
                                                   {"address", i->second.address},
                                                   {"error", to_string(err)}});
            fail_waiting(i->second);
          });
}

/// Conversations served here that the view now places elsewhere are handed
/// over (Akka's hand-off): each finishes its reply and write in flight,
/// then stops; meanwhile lookups go to the new owner, whose claim fences
/// off anything this node would still write.
void hand_over_moved(directory self) {
  auto& st = self->state;
  int64_t moved = 0;
  for (auto i = st.live.begin(); i != st.live.end();) {
    if (owns(self, i->first)) {
      ++i;
      continue;
    }
    caf::anon_send(i->second, handover_atom::value);
    i = st.live.erase(i);
    ++moved;
  }
  if (moved > 0)
    log::info("conversations_handed_over", {{"count", moved}});
}

/// A conversation that handed over may have acked messages still waiting
/// for their reply: its new owner is asked for it, which loads it and
/// answers them, whether or not a connection follows it there.
void wake_owner(directory self, const std::string& id) {
  auto& st = self->state;
  if (owns(self, id))
    return; // a claim from another node fenced it: this view is stale
  auto r = st.remotes.find(owner_of(id, st.members));
  if (r == st.remotes.end() || !r->second.handle)
    return; // the next lookup wakes it
  self->request(r->second.handle, remote_timeout, lookup_local_atom::value, id)
      .then([](conversation_actor&) {},
            [=](caf::error& err) {
              log::warn("remote_wake_failed", {{"conversationId", id}, {"error", to_string(err)}});
            });
}

/// A new membership view: placement follows it; new members are connected
/// to, members gone are forgotten.
void apply_view(directory self, cluster_members members, std::string self_id) {
  auto& st = self->state;
  st.self_id = std::move(self_id);
  st.members = std::move(members);
  for (auto i = st.remotes.begin(); i != st.remotes.end();) {
    bool member = false;
    for (auto& m : st.members)
      member = member || m.process_id == i->first;
    if (member) {
      ++i;
    } else {
      fail_waiting(i->second);
      i = st.remotes.erase(i);
    }
  }
  for (auto& m : st.members) {
    if (m.process_id == st.self_id)
      continue;
    auto& r = st.remotes[m.process_id];
    if (!r.address.empty() && r.address != m.address && r.handle) {
      // Same process, new address: cannot be, but never talk to a stale one.
      // (An entry a hello made before the view named it has no address.)
      self->demonitor(r.handle.address());
      r.handle = directory_actor{};
    }
    r.address = m.address;
    if (r.handle || r.connecting)
      continue;
    if (opens_link(self, m.process_id))
      connect(self, m.process_id);
    else // its hello should come; connect ourselves only if it does not
      self->delayed_send(self, reconnect_delay(self, m.process_id), reconnect_atom::value,
                         m.process_id);
  }
  hand_over_moved(self);
}

directory_actor::behavior_type directory_impl(directory self, conversation_config cfg) {
  self->state.cfg = std::move(cfg);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (auto i = st.ids.find(dm.source); i != st.ids.end()) {
      auto id = i->second;
      st.ids.erase(i);
      // Only if it is still the one served here: a conversation handed
      // over and placed back may have a new actor already.
      if (auto j = st.live.find(id); j != st.live.end() && j->second.address() == dm.source)
        st.live.erase(j);
      if (is_conversation_moved(dm.reason))
        wake_owner(self, id);
      return;
    }
    // Another node's directory: connect again while it is a member.
    for (auto& [process_id, r] : st.remotes)
      if (r.handle && r.handle.address() == dm.source) {
        log::warn("cluster_peer_lost", {{"process", process_id}, {"reason", to_string(dm.reason)}});
        r.handle = directory_actor{};
        fail_waiting(r);
        // While it is a member, the side that opens links connects again
        // (the other waits for its hello). Not at once: a peer that is
        // going would be retried in a loop; and by a message, not by
        // re-applying the view: a newer one may arrive meanwhile.
        self->delayed_send(self, reconnect_delay(self, process_id), reconnect_atom::value,
                           process_id);
        return;
      }
  });
  return {
      [=](lookup_atom, const std::string& id) -> caf::result<conversation_actor> {
        auto& st = self->state;
        if (!looks_like_uuid(id))
          return make_chat_error(protocol::error_code::not_found, "conversation not found");
        if (owns(self, id))
          return serve_local(self, id);
        auto owner = owner_of(id, st.members);
        auto rp = self->make_response_promise<conversation_actor>();
        auto& r = st.remotes[owner];
        if (r.handle) {
          ask_remote(self, owner, id, rp);
        } else {
          r.waiting.emplace_back(id, rp);
          if (opens_link(self, owner))
            connect(self, owner); // else its hello is on the way (or the fallback)
        }
        return rp;
      },
      [=](lookup_local_atom, const std::string& id) -> caf::result<conversation_actor> {
        if (!looks_like_uuid(id))
          return make_chat_error(protocol::error_code::not_found, "conversation not found");
        return serve_local(self, id);
      },
      [=](create_atom, const std::string& user) -> caf::result<std::string, conversation_actor> {
        // Placed here, where its creator's session is: draw ids until this
        // node owns one (N tries on average for N members).
        auto id = new_uuid();
        for (int i = 0; i < 256 && !owns(self, id); ++i)
          id = new_uuid();
        auto conv = spawn_new_conversation(self->system(), id, user, self->state.cfg);
        track(self, id, conv);
        return {id, conv};
      },
      [=](drain_atom) {
        for (auto& kv : self->state.live)
          caf::anon_send(kv.second, drain_atom::value);
      },
      [=](cluster_view_atom, cluster_members& members, std::string& self_id) {
        apply_view(self, std::move(members), std::move(self_id));
      },
      [=](reconnect_atom, const std::string& process_id) {
        auto i = self->state.remotes.find(process_id);
        if (i != self->state.remotes.end() && !i->second.handle) // a member, not linked
          connect(self, process_id);
      },
      [=](hello_atom, const std::string& process_id, const caf::actor& peer) {
        if (process_id == self->state.self_id || !peer)
          return;
        // A member opened the link: its directory, over that link. (If this
        // node's view does not name it yet, the entry waits for the view.)
        log::info("cluster_peer_connected", {{"process", process_id}, {"by", "hello"}});
        adopt(self, process_id, caf::actor_cast<directory_actor>(peer));
      },
  };
}

} // namespace

directory_actor spawn_directory(caf::actor_system& sys, conversation_config cfg) {
  return sys.spawn(directory_impl, std::move(cfg));
}

} // namespace chat
