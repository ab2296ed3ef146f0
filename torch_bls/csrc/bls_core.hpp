// bls_core.hpp: the PyTorch backend "bls" without the PyTorch-version-specific glue.
//
// Core owns one process group's MPI state: a communicator built from the group's ranks, libbls
// communicators (BLS mode, lag L; one per element size, counts in the tensor's elements) for
// all_to_all_single, and a duplicate communicator on which one worker thread runs every other
// collective in call order with MPI's blocking calls.  core.cpp: the group's life and the
// requests; alltoall.cpp: all_to_all_single on libbls; collectives.cpp: the others.  Every call returns a Work at once; Works complete on their own:
//  - all_to_all_single: the libbls progress thread moves the bytes straight between the
//    tensors; its completion hook wakes the completion thread, which reports the iteration
//    and completes the Work.  Up to L+1 calls are in flight; call L+2 waits (in the caller)
//    until the oldest completed.  L = 0 is a synchronous collective.
//  - the others: the worker thread completes the Work when the MPI call returns.
// Errors (a count mismatch, a timeout, an MPI failure) become exceptions carrying libbls's or
// MPI's message, thrown by wait() and available from exception().
//
// The version glue (torch_1_13.cpp) subclasses the ProcessGroup (1.x) or Backend (2.x) base
// class and forwards to Core.  Only c10d::Work, at::Tensor and c10d::Store are used here.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <bls.h>
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace torch_bls {

class Core;

// A request of this backend.  complete() is called once, by the thread that finished it.
class BlsWork : public c10d::Work {
 public:
  BlsWork(int rank, c10d::OpType op, std::string what, std::weak_ptr<Core> core,
          std::chrono::milliseconds default_timeout);

  // Waits up to timeout (none given: the group's timeout); throws the request's error, or
  // a timeout error naming what is missing.  The request stays pending after a timeout.
  bool wait(std::chrono::milliseconds timeout = kNoTimeout) override;
  std::vector<at::Tensor> result() override;

  void complete(std::exception_ptr error);
  const std::string& what() const { return what_; }

  // State owned by Core while the request is in flight.
  bls_comm_t* comm = nullptr;        // all_to_all_single: its libbls communicator,
  bls_iter_t iter = -1;              // its iteration there,
  std::vector<size_t> expected;      // the elements it expects from each peer,
  int64_t elem_size = 0;             // their size in bytes
  std::string dtype;                 // and type
  std::vector<at::Tensor> keep;      // tensors lent to MPI until completion
  std::vector<at::Tensor> outputs;   // what result() returns
  std::function<void()> finish_fn;   // copies into non-contiguous outputs, before complete()

 private:
  std::string what_;
  std::weak_ptr<Core> core_;
  std::chrono::milliseconds default_timeout_;
};

class Core : public std::enable_shared_from_this<Core> {
 public:
  // Collective over the group's ranks.  Initialises MPI (MPI_THREAD_MULTIPLE) if nobody did;
  // the processes must belong to one MPI job (launched by mpirun).  Ranks are matched through
  // the store: group rank r is the MPI process that published r.
  static std::shared_ptr<Core> create(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                      int size, std::chrono::milliseconds timeout, int lag);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  c10::intrusive_ptr<c10d::Work> allToAllSingle(at::Tensor& output, at::Tensor& input,
                                                const std::vector<int64_t>& output_splits,
                                                const std::vector<int64_t>& input_splits);
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors, int64_t root);
  c10::intrusive_ptr<c10d::Work> allReduce(std::vector<at::Tensor>& tensors,
                                           const c10d::ReduceOp& op);
  c10::intrusive_ptr<c10d::Work> allGather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs);
  c10::intrusive_ptr<c10d::Work> allGatherBase(at::Tensor& output, at::Tensor& input);
  c10::intrusive_ptr<c10d::Work> gather(std::vector<std::vector<at::Tensor>>& outputs,
                                        std::vector<at::Tensor>& inputs, int64_t root);
  c10::intrusive_ptr<c10d::Work> scatter(std::vector<at::Tensor>& outputs,
                                         std::vector<std::vector<at::Tensor>>& inputs,
                                         int64_t root);
  c10::intrusive_ptr<c10d::Work> barrier();

  int lag() const { return lag_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bls_stats_t stats();

  // For a request that timed out: what it still waits for ("peers 2, 3").
  std::string pending(const BlsWork& work);

  // Stops the threads and frees the MPI objects; pending requests fail.  Idempotent.  A
  // worker blocked in an MPI collective that a peer never joins is given kShutdownGrace,
  // then left behind (detached, its communicators not freed); returns false then.  Should
  // MPI ever return from that call after this Core is freed, the worker would touch freed
  // state: reachable only once a peer vanished, at exit, where the process ends anyway.
  bool shutdown();
  // Shuts down every live Core, then finalizes MPI if this module initialised it
  // (registered with Python's atexit: MPI_Finalize must precede the process's exit).
  static void finalizeAll();

 private:
  Core(int rank, int size, std::chrono::milliseconds timeout, int lag);
  void init(const c10::intrusive_ptr<c10d::Store>& store);
  c10::intrusive_ptr<BlsWork> newWork(c10d::OpType op, const std::string& what);
  c10::intrusive_ptr<c10d::Work> enqueue(const c10::intrusive_ptr<BlsWork>& work,
                                         std::function<void()> fn);
  void workerLoop();
  void completionLoop();
  // a2a_mu_ held: report every complete iteration, moving its request from inflight_ to done.
  // The caller drops the lock, then releaseReaped(done): the last reference to a tensor may
  // need the GIL, and a Python thread holding the GIL may be waiting for a2a_mu_.
  void reapLocked(std::list<c10::intrusive_ptr<BlsWork>>& done);
  static void releaseReaped(std::list<c10::intrusive_ptr<BlsWork>>& done);
  std::string pendingLocked(const BlsWork& work);  // a2a_mu_ held: the peers it waits for
  bls_comm_t* commFor(int64_t elem_size);         // a2a_mu_ held
  std::string failureMessage(const BlsWork& work, bls_status_t st,
                             const std::vector<size_t>& arrived) const;
  static void onComplete(void* arg, bls_iter_t iter);

  const int rank_, size_;
  const std::chrono::milliseconds timeout_;
  const int lag_;
  MPI_Comm group_comm_ = MPI_COMM_NULL;  // the group, in group-rank order
  MPI_Comm coll_comm_ = MPI_COMM_NULL;   // the worker's collectives
  // TORCH_BLS_CHECK_DTYPES=1 on any process: every all_to_all_single first checks, on its own
  // communicator from the calling thread, that all processes pass one dtype (a debug aid: it
  // makes each call synchronous).  MPI_COMM_NULL when off.
  MPI_Comm check_comm_ = MPI_COMM_NULL;
  std::map<int64_t, bls_comm_t*> a2a_;   // all_to_all_single, by element size (a2a_mu_)

  // all_to_all_single in flight, oldest first.
  std::mutex a2a_mu_;
  std::condition_variable a2a_cv_;  // an in-flight request completed
  std::list<c10::intrusive_ptr<BlsWork>> inflight_;
  std::vector<size_t> counts_;  // [4P] scratch for bls_post: sendcounts, sdispls, recv..

  // Completion hook -> completion thread.  notify_mu_ is never held around libbls calls.
  std::mutex notify_mu_;
  std::condition_variable notify_cv_;
  uint64_t notified_ = 0;
  std::thread completion_thread_;

  // Worker: the other collectives, in call order.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::pair<c10::intrusive_ptr<BlsWork>, std::function<void()>>> queue_;
  std::thread worker_thread_;
  bool worker_done_ = false;  // queue_mu_: the worker left its loop
  std::string running_;       // queue_mu_: the collective the worker is in, if any
  bool stuck_ = false;        // shutdown gave up on a worker blocked in MPI (peer gone)

  std::mutex shutdown_mu_;
  std::atomic<bool> stop_{false};  // threads: leave
  std::atomic<bool> down_{false};  // no new calls; set before the MPI objects go
};

}  // namespace torch_bls
