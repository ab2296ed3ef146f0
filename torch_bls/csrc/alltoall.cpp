// alltoall.cpp: all_to_all_single on libbls (bls_core.hpp).  One libbls communicator per
// element size, created by the group's first call of that size (every process makes its
// calls in the same order, so the creation is collective), with the tensor's element as the
// unit of counts: libbls's messages and counts are in the caller's elements.
#include "bls_core.hpp"
#include "util.hpp"

#include <c10/util/StringUtil.h>

#include <climits>
#include <stdexcept>

namespace torch_bls {

// A failed call in the caller's terms: a count mismatch says which peer and how many bytes
// and elements of the tensor's dtype; anything else is libbls's message.
std::string Core::failureMessage(const BlsWork& work, bls_status_t st,
                                 const std::vector<size_t>& arrived) const {
  if (st == BLS_ERR_COUNT)
    for (size_t p = 0; p < arrived.size(); p++)
      if (arrived[p] != work.expected[p]) {
        size_t es = static_cast<size_t>(work.elem_size);
        return c10::str("bls: ", work.what(), ": call ", work.iter, ", from rank ", p,
                        ": expected ", work.expected[p] * es, " bytes (", work.expected[p], " ",
                        work.dtype, " elements), received ", arrived[p] * es, " bytes (",
                        arrived[p], ")");
      }
  return c10::str("bls: ", work.what(), ": ", bls_last_error());
}

// The communicator of one element size, made by the first call that needs it (a2a_mu_ held).
bls_comm_t* Core::commFor(int64_t elem_size) {
  auto it = a2a_.find(elem_size);
  if (it != a2a_.end())
    return it->second;
  MPI_Datatype type;
  checkMpi(MPI_Type_contiguous(static_cast<int>(elem_size), MPI_BYTE, &type), "MPI_Type_contiguous");
  MPI_Type_commit(&type);
  bls_config_t cfg;
  bls_config_init(&cfg);
  cfg.mode = BLS_MODE_BLS;
  cfg.lag = lag_;
  cfg.datatype = type;
  cfg.max_block = static_cast<size_t>(INT_MAX) / static_cast<size_t>(elem_size);
  cfg.timeout = static_cast<double>(timeout_.count()) / 1000.0;
  bls_comm_t* comm = nullptr;
  bls_status_t st = bls_comm_create(group_comm_, &cfg, &comm);
  MPI_Type_free(&type);  // libbls keeps the element size, not the type
  if (st != BLS_OK)
    throw std::runtime_error(c10::str("bls: creating the all_to_all_single communicator for ",
                                      elem_size, "-byte elements: ", bls_last_error()));
  bls_comm_set_notify(comm, &Core::onComplete, this);
  a2a_[elem_size] = comm;
  return comm;
}

void Core::onComplete(void* arg, bls_iter_t /*iter*/) {
  auto* core = static_cast<Core*>(arg);
  std::lock_guard<std::mutex> lock(core->notify_mu_);
  core->notified_++;
  core->notify_cv_.notify_one();
}

void Core::completionLoop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(notify_mu_);
      notify_cv_.wait(lock, [&] { return stop_ || notified_ != seen; });
      if (stop_)
        return;
      seen = notified_;
    }
    std::list<c10::intrusive_ptr<BlsWork>> done;
    {
      std::lock_guard<std::mutex> lock(a2a_mu_);
      reapLocked(done);
    }
    releaseReaped(done);
  }
}

void Core::releaseReaped(std::list<c10::intrusive_ptr<BlsWork>>& done) {
  for (auto& work : done) {
    work->finish_fn = nullptr;
    work->keep.clear();
  }
  done.clear();
}

void Core::reapLocked(std::list<c10::intrusive_ptr<BlsWork>>& done) {
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    const auto& work = *it;
    int flag = 0;
    std::vector<size_t> arrived(static_cast<size_t>(size_));
    bls_status_t st = bls_test(work->comm, work->iter, &flag, arrived.data());
    if (st == BLS_OK && !flag) {
      ++it;
      continue;
    }
    std::exception_ptr error;
    if (st != BLS_OK) {
      error = std::make_exception_ptr(std::runtime_error(failureMessage(*work, st, arrived)));
    } else if (work->finish_fn) {
      try {
        work->finish_fn();
      } catch (...) {
        error = std::current_exception();
      }
    }
    work->complete(error);
    done.splice(done.end(), inflight_, it++);  // released after a2a_mu_ (releaseReaped)
    a2a_cv_.notify_all();
  }
}

c10::intrusive_ptr<c10d::Work> Core::allToAllSingle(at::Tensor& output, at::Tensor& input,
                                                    const std::vector<int64_t>& output_splits,
                                                    const std::vector<int64_t>& input_splits) {
  checkCpuDense(input, "all_to_all_single", "input");
  checkCpuDense(output, "all_to_all_single", "output");
  TORCH_CHECK(input.scalar_type() == output.scalar_type(), "bls: all_to_all_single: input is ",
              input.scalar_type(), " but output is ", output.scalar_type());
  if (check_comm_ != MPI_COMM_NULL)  // TORCH_BLS_CHECK_DTYPES=1 (row counts may differ)
    checkAgreement(input, check_comm_, "all_to_all_single", false);
  const int P = size_;
  auto in_rows = splitRows(input, input_splits, P, "input");
  auto out_rows = splitRows(output, output_splits, P, "output");
  const int64_t es = static_cast<int64_t>(input.element_size());
  const int64_t in_row = rowElems(input), out_row = rowElems(output);  // in elements

  auto work = newWork(c10d::OpType::ALLTOALL_BASE, "all_to_all_single");
  // Blocks move straight between the tensors (zero copy) unless they alias each other or
  // are not contiguous.
  at::Tensor send = input.contiguous();
  if (send.is_alias_of(output))
    send = send.clone();
  at::Tensor recv = output.is_contiguous() ? output : at::empty_like(output, at::MemoryFormat::Contiguous);
  if (!recv.is_same(output))
    work->finish_fn = [output, recv]() mutable { output.copy_(recv); };
  work->keep = {send, recv};
  work->outputs = {output};

  std::unique_lock<std::mutex> lock(a2a_mu_);
  TORCH_CHECK(!down_, "bls: all_to_all_single on a process group that was shut down");
  size_t* sc = counts_.data();
  size_t* sd = sc + P;
  size_t* rc = sd + P;
  size_t* rd = rc + P;
  size_t soff = 0, roff = 0;
  for (int q = 0; q < P; q++) {
    sc[q] = static_cast<size_t>(in_rows[static_cast<size_t>(q)] * in_row);
    rc[q] = static_cast<size_t>(out_rows[static_cast<size_t>(q)] * out_row);
    sd[q] = soff;
    rd[q] = roff;
    soff += sc[q];
    roff += rc[q];
  }
  // The lag bound: call k is posted once call k-L-1 completed (and was reported).
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (static_cast<int>(inflight_.size()) > lag_) {
    if (a2a_cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
        static_cast<int>(inflight_.size()) > lag_) {
      throw std::runtime_error(c10::str(
          "bls: all_to_all_single: with lag ", lag_, " call ", inflight_.front()->iter,
          " must complete first, and after ", static_cast<double>(timeout_.count()) / 1000.0,
          " s it still waits for peers ", pendingLocked(*inflight_.front())));
    }
  }
  TORCH_CHECK(!down_, "bls: all_to_all_single on a process group that was shut down");
  bls_comm_t* comm = commFor(es);
  bls_iter_t iter = -1;
  if (bls_post(comm, send.data_ptr(), sc, sd, recv.data_ptr(), rc, rd, &iter) != BLS_OK)
    throw std::runtime_error(c10::str("bls: all_to_all_single: ", bls_last_error()));
  work->comm = comm;
  work->iter = iter;
  work->elem_size = es;
  work->dtype = c10::toString(input.scalar_type());
  work->expected.assign(rc, rc + P);
  inflight_.push_back(work);
  return work;
}

std::string Core::pending(const BlsWork& work) {
  if (work.iter < 0)
    return "; it runs as a blocking MPI call, so a process of the group has not reached it "
           "(or one before it)";
  std::lock_guard<std::mutex> lock(a2a_mu_);
  if (down_)
    return "";
  return c10::str("; call ", work.iter, " still waits for peers ", pendingLocked(work));
}

std::string Core::pendingLocked(const BlsWork& work) {
  char why[512];
  if (bls_pending_peers(work.comm, work.iter, why, sizeof(why)) != BLS_OK)
    return c10::str("(unknown: ", bls_last_error(), ")");
  return why;
}

bls_stats_t Core::stats() {
  std::lock_guard<std::mutex> lock(a2a_mu_);
  bls_stats_t s{};
  for (const auto& size_comm : a2a_) {  // summed over the element sizes in use
    bls_stats_t one{};
    if (!down_ && bls_comm_stats(size_comm.second, &one) == BLS_OK) {
      s.posted += one.posted;
      s.completed += one.completed;
      s.post_wait_seconds += one.post_wait_seconds;
      s.wait_seconds += one.wait_seconds;
      s.progress_cpu_seconds += one.progress_cpu_seconds;
      s.progress_standby_seconds += one.progress_standby_seconds;
      s.buffer_bytes += one.buffer_bytes;
    }
  }
  return s;
}

}  // namespace torch_bls
