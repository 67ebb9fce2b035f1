#include "ai/curl_driver.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <curl/curl.h>

#include "common/metrics.hpp"

namespace chat::ai {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr size_t max_error_body = 4096;
constexpr std::chrono::milliseconds max_poll_wait{1000};

// curl_global_init is not guaranteed thread-safe: run it once, up front.
void init_curl_once() {
  static std::once_flag flag;
  std::call_once(flag, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

} // namespace

/// One transfer; owned by the driver's thread once started.
struct transfer {
  curl_driver::transfer_id id = 0;
  http_request req;
  std::unique_ptr<transfer_handler> handler;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  clock_type::time_point started;
  clock_type::time_point last_token;
  long status = 0;
  bool got_body = false;
  bool got_token = false;
  std::string error_body;
  std::string retry_after;
  /// The driver's estimate of the earliest deadline (see impl).
  clock_type::time_point* next_deadline = nullptr;

  ~transfer() {
    if (easy != nullptr)
      curl_easy_cleanup(easy);
    if (headers != nullptr)
      curl_slist_free_all(headers);
  }

  clock_type::time_point deadline() const {
    return std::min(req.deadline,
                    got_token ? last_token + req.idle_timeout : started + req.first_token_timeout);
  }

  /// Which timeout deadline() is, for logs.
  const char* deadline_name() const {
    if (req.deadline
        <= (got_token ? last_token + req.idle_timeout : started + req.first_token_timeout))
      return "reply deadline";
    return got_token ? "idle" : "no first token";
  }
};

/// The multi handle runs on curl's socket interface, with epoll: a wakeup
/// costs the sockets that are ready, not all of them. (With
/// curl_multi_perform + curl_multi_poll, every wakeup walked and polled
/// every transfer: at 2,000 streams, ~10 % of chatd's CPU went to poll()
/// and curl's bookkeeping of idle connections.)
struct curl_driver::impl {
  CURLM* multi = curl_multi_init();
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  int wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); // start, cancel, stop
  std::thread thread;

  impl() {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wakefd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &impl::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &impl::on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
  }

  ~impl() {
    curl_multi_cleanup(multi);
    close(epfd);
    close(wakefd);
  }

  /// From any thread: the driver's thread looks at its queues.
  void wakeup() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = write(wakefd, &one, sizeof one);
  }

  // Shared with other threads, guarded by mtx.
  std::mutex mtx;
  std::vector<std::unique_ptr<transfer>> to_start;
  std::vector<transfer_id> to_cancel;
  bool stopping = false;
  transfer_id next_id = 1;

  // The driver's thread only.
  std::unordered_map<transfer_id, std::unique_ptr<transfer>> active;
  /// When curl wants CURL_SOCKET_TIMEOUT (its own timers); max: none.
  clock_type::time_point curl_timer = clock_type::time_point::max();
  /// No transfer's deadline() comes before this (an early estimate: later
  /// tokens only push deadlines back; a first token lowers it if need be),
  /// so the transfers are scanned only then, not at every wakeup.
  clock_type::time_point next_deadline = clock_type::time_point::min();
  /// Started with a `start_at` still to come (a retry's backoff).
  std::vector<std::unique_ptr<transfer>> waiting;

  static size_t on_write(char* ptr, size_t size, size_t nmemb, void* user) {
    auto n = size * nmemb;
    auto& t = *static_cast<transfer*>(user);
    t.got_body = true;
    if (t.status == 0)
      curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &t.status);
    if (t.status >= 400) {
      // Keep the start of an error body for a message; skip the rest.
      auto keep = std::min(n, max_error_body - std::min(max_error_body, t.error_body.size()));
      t.error_body.append(ptr, keep);
      return n;
    }
    switch (t.handler->on_body(std::string_view{ptr, n})) {
      case body_action::token:
        t.last_token = clock_type::now();
        if (!t.got_token) {
          metrics::global().provider_ttft.observe(t.last_token - t.started);
          t.got_token = true;
          // The idle timeout replaces the first-token one: it may be sooner.
          *t.next_deadline = std::min(*t.next_deadline, t.deadline());
        }
        return n;
      case body_action::more:
        return n;
      case body_action::abort:
        break;
    }
    return 0; // less than n makes curl abort the transfer
  }

  /// Keeps Retry-After of the final response (a new status line resets it).
  static size_t on_header(char* ptr, size_t size, size_t nmemb, void* user) {
    auto n = size * nmemb;
    auto& t = *static_cast<transfer*>(user);
    std::string_view line{ptr, n};
    constexpr std::string_view name = "retry-after:";
    if (line.substr(0, 5) == "HTTP/") {
      t.retry_after.clear();
    } else if (line.size() > name.size()
               && std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
                    return a == std::tolower(static_cast<unsigned char>(b));
                  })) {
      auto value = line.substr(name.size());
      t.retry_after.assign(value.substr(0, std::min<size_t>(value.size(), 64)));
    }
    return n;
  }

  /// curl: watch socket `s` for `what` (or stop watching it).
  static int on_socket(CURL*, curl_socket_t s, int what, void* user, void* socketp) {
    auto& self = *static_cast<impl*>(user);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self.epfd, EPOLL_CTL_DEL, s, nullptr);
      curl_multi_assign(self.multi, s, nullptr);
      return 0;
    }
    epoll_event ev{};
    ev.events = ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0u)
                | ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0u);
    ev.data.fd = s;
    // A socket number curl closed may come back as a new socket: ADD and
    // MOD each fall back to the other.
    int op = socketp == nullptr ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(self.epfd, op, s, &ev) != 0) {
      op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
      epoll_ctl(self.epfd, op, s, &ev);
    }
    if (socketp == nullptr)
      curl_multi_assign(self.multi, s, &self);
    return 0;
  }

  /// curl: call CURL_SOCKET_TIMEOUT after `timeout_ms` (-1: no timer).
  static int on_timer(CURLM*, long timeout_ms, void* user) {
    auto& self = *static_cast<impl*>(user);
    self.curl_timer = timeout_ms < 0 ? clock_type::time_point::max()
                                     : clock_type::now() + std::chrono::milliseconds{timeout_ms};
    return 0;
  }

  void add(std::unique_ptr<transfer> t) {
    auto* easy = curl_easy_init();
    t->easy = easy;
    for (auto& h : t->req.headers)
      t->headers = curl_slist_append(t->headers, h.c_str());
    curl_easy_setopt(easy, CURLOPT_URL, t->req.url.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
    if (!t->req.body.empty()) {
      // POSTFIELDS does not copy: the transfer owns the body until it ends.
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->req.body.data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(t->req.body.size()));
    }
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &impl::on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &impl::on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t.get());
    // No signals from a worker thread (they would hit a random thread).
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(t->req.connect_timeout.count()));
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    t->started = clock_type::now();
    t->last_token = t->started;
    auto id = t->id;
    if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
      transfer_result r;
      r.kind = transfer_result::connect_failed;
      r.detail = "curl_multi_add_handle failed";
      t->handler->on_done(r);
      return;
    }
    t->next_deadline = &next_deadline;
    next_deadline = std::min(next_deadline, t->deadline());
    active.emplace(id, std::move(t));
  }

  // Removes the transfer (closing its connection if the response is not
  // complete) and tells its handler.
  void finish(transfer_id id, transfer_result r) {
    auto i = active.find(id);
    if (i == active.end())
      return;
    auto t = std::move(i->second);
    active.erase(i);
    curl_multi_remove_handle(multi, t->easy);
    if (t->status == 0)
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    r.http_status = t->status;
    r.got_body = t->got_body;
    r.error_body = std::move(t->error_body);
    r.retry_after = std::move(t->retry_after);
    t->handler->on_done(r);
  }

  void on_curl_done(CURL* easy, CURLcode code) {
    transfer* t = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
    transfer_result r;
    if (code == CURLE_OK) {
      r.kind = transfer_result::completed;
    } else {
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      r.kind = status == 0 ? transfer_result::connect_failed : transfer_result::cut;
      // curl_easy_strerror is generic text: no URL, no header values.
      r.detail = curl_easy_strerror(code);
    }
    finish(t->id, std::move(r));
  }

  void check_timeouts(clock_type::time_point now) {
    if (now < next_deadline)
      return;
    std::vector<transfer_id> expired;
    next_deadline = clock_type::time_point::max();
    for (auto& [id, t] : active) {
      auto d = t->deadline();
      if (d <= now)
        expired.push_back(id);
      else
        next_deadline = std::min(next_deadline, d);
    }
    for (auto id : expired) {
      transfer_result r;
      r.kind = transfer_result::timed_out;
      r.detail = active[id]->deadline_name();
      finish(id, std::move(r));
    }
  }

  std::chrono::milliseconds poll_wait(clock_type::time_point now) const {
    auto wait = max_poll_wait;
    auto until = [&](clock_type::time_point when) {
      if (when == clock_type::time_point::max())
        return;
      if (when <= now) {
        wait = std::chrono::milliseconds{0};
        return;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(when - now)
                  + std::chrono::milliseconds{1};
      wait = std::min(wait, left);
    };
    until(next_deadline);
    until(curl_timer);
    for (auto& t : waiting)
      until(t->req.start_at);
    return wait;
  }

  void read_done() {
    int left = 0;
    while (auto* msg = curl_multi_info_read(multi, &left))
      if (msg->msg == CURLMSG_DONE)
        on_curl_done(msg->easy_handle, msg->data.result);
  }

  /// Adds the transfers whose start_at has come, keeps the others waiting.
  void start_due(std::vector<std::unique_ptr<transfer>> starts) {
    auto now = clock_type::now();
    for (auto& t : waiting)
      starts.push_back(std::move(t));
    waiting.clear();
    for (auto& t : starts) {
      if (t->req.start_at > now)
        waiting.push_back(std::move(t));
      else
        add(std::move(t));
    }
  }

  /// Cancels a transfer, running or waiting.
  void cancel(transfer_id id) {
    transfer_result r;
    r.kind = transfer_result::cancelled;
    auto i = std::find_if(waiting.begin(), waiting.end(),
                          [&](const std::unique_ptr<transfer>& t) { return t->id == id; });
    if (i == waiting.end()) {
      finish(id, std::move(r));
      return;
    }
    auto t = std::move(*i);
    waiting.erase(i);
    t->handler->on_done(r);
  }

  void run() {
    for (;;) {
      std::vector<std::unique_ptr<transfer>> starts;
      std::vector<transfer_id> cancels;
      {
        std::lock_guard<std::mutex> guard{mtx};
        if (stopping)
          break;
        starts.swap(to_start);
        cancels.swap(to_cancel);
      }
      start_due(std::move(starts));
      for (auto id : cancels)
        cancel(id);
      int running = 0;
      auto now = clock_type::now();
      if (curl_timer <= now) {
        curl_timer = clock_type::time_point::max(); // on_timer may set it again
        curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
      }
      read_done();
      now = clock_type::now();
      check_timeouts(now);
      epoll_event events[256];
      int n = epoll_wait(epfd, events, 256, static_cast<int>(poll_wait(now).count()));
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == wakefd) {
          uint64_t count = 0;
          [[maybe_unused]] auto r = read(wakefd, &count, sizeof count);
          continue;
        }
        int flags = 0;
        if ((events[i].events & EPOLLIN) != 0)
          flags |= CURL_CSELECT_IN;
        if ((events[i].events & EPOLLOUT) != 0)
          flags |= CURL_CSELECT_OUT;
        if ((events[i].events & (EPOLLERR | EPOLLHUP)) != 0)
          flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(multi, fd, flags, &running);
      }
      read_done();
    }
    // Stopping: nobody will read results any more, but every handler still
    // gets its one on_done.
    std::vector<transfer_id> ids;
    for (auto& [id, t] : active)
      ids.push_back(id);
    for (auto id : ids) {
      transfer_result r;
      r.kind = transfer_result::stopped;
      finish(id, std::move(r));
    }
    std::vector<std::unique_ptr<transfer>> starts;
    {
      std::lock_guard<std::mutex> guard{mtx};
      starts.swap(to_start);
    }
    for (auto& t : waiting)
      starts.push_back(std::move(t));
    for (auto& t : starts) {
      transfer_result r;
      r.kind = transfer_result::stopped;
      t->handler->on_done(r);
    }
  }
};

curl_driver::curl_driver() {
  init_curl_once();
  impl_ = std::make_shared<impl>();
  // The thread co-owns impl: see the destructor.
  impl_->thread = std::thread{[self = impl_] { self->run(); }};
}

curl_driver::~curl_driver() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->stopping = true;
  }
  impl_->wakeup();
  // A handler's callback may drop the last reference to the driver's owner
  // (an actor's last handle), so that this destructor runs on the driver's
  // own thread, which cannot join itself. It then ends after that callback
  // returns and frees impl on its way out.
  if (impl_->thread.get_id() == std::this_thread::get_id())
    impl_->thread.detach();
  else
    impl_->thread.join();
}

curl_driver::transfer_id curl_driver::start(http_request req, std::unique_ptr<transfer_handler> h) {
  auto t = std::make_unique<transfer>();
  t->req = std::move(req);
  t->handler = std::move(h);
  transfer_id id;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    id = impl_->next_id++;
    t->id = id;
    impl_->to_start.push_back(std::move(t));
  }
  impl_->wakeup();
  return id;
}

void curl_driver::cancel(transfer_id id) {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->to_cancel.push_back(id);
  }
  impl_->wakeup();
}

} // namespace chat::ai
