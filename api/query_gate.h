// QueryGate: bounds how many queries evaluate at once; the rest wait in a bounded queue.
//
//   QueryGate gate(/*max_running=*/20, /*max_waiting=*/64);
//   absl::StatusOr<QueryGate::Ticket> ticket = gate.Enter(deadline, &cancelled);
//   if (!ticket.ok()) ...;   // DeadlineExceeded, Cancelled or Unavailable (queue full)
//   ... evaluate; the slot is released when `ticket` goes away.
//
// Waiters are admitted in arrival order. Thread-safe; the gate must outlive its tickets.
#ifndef TIDEMARK_API_QUERY_GATE_H_
#define TIDEMARK_API_QUERY_GATE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tidemark::api {

class QueryGate {
 public:
  // A running slot; releases it when destroyed. Movable.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept : gate_(other.gate_) { other.gate_ = nullptr; }
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket();

   private:
    friend class QueryGate;
    explicit Ticket(QueryGate* gate) : gate_(gate) {}
    QueryGate* gate_ = nullptr;
  };

  // `max_running` >= 1 queries run at once; at most `max_waiting` >= 0 more wait for a slot.
  QueryGate(int max_running, int max_waiting);
  QueryGate(const QueryGate&) = delete;
  QueryGate& operator=(const QueryGate&) = delete;

  // Takes a slot, waiting in line for one until `deadline`. Unavailable at once when the queue
  // is full; DeadlineExceeded ("query timed out in query queue") when the deadline passes;
  // Cancelled when `*cancelled` (may be null) becomes true while waiting.
  absl::StatusOr<Ticket> Enter(absl::Time deadline, const std::atomic<bool>* cancelled);

  int running() const;
  int waiting() const;

 private:
  void Release();
  // Advances serving_number_ past waiters that left the line. Needs mu_.
  void SkipAbandoned();

  const int max_running_;
  const int max_waiting_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;
  int waiting_ = 0;
  uint64_t next_number_ = 0;    // arrival numbers handed to waiters
  uint64_t serving_number_ = 0;  // the waiter whose turn it is
  std::vector<uint64_t> abandoned_;  // numbers of waiters that left before their turn
};

}  // namespace tidemark::api

#endif  // TIDEMARK_API_QUERY_GATE_H_
