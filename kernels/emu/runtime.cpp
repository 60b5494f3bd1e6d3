//go:build cgo && linux && !noemu

// Fiber scheduler and warp-level operations of the kernel emulator.
#include <stdio.h>
#include <stdlib.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "emu.h"
#include "registry.h"
#include "runtime.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
uint64_t (*qi_emu_warp_slots)[8];

namespace {

enum State { READY, WAIT_WARP, WAIT_BLOCK, DONE };

const size_t kStack = 256 << 10;
const int kMaxThreads = 1024;

#if defined(__x86_64__)
// A context switch saves the callee-saved registers on the old stack and
// swaps stack pointers: far cheaper than swapcontext, which also saves the
// signal mask with a system call.
extern "C" void qi_emu_switch(void** save_sp, void* new_sp);
asm(R"(
.text
.globl qi_emu_switch
.type qi_emu_switch,@function
qi_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size qi_emu_switch, .-qi_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");

struct Context {
  void* sp;
};
#else
struct Context {
  ucontext_t uc;
};
#endif

struct Fiber {
  Context ctx;
  State st;
  char* stack;
};

// One launch at a time: the kernels' shared memory is static storage.
std::mutex launch_mu;

Context sched_ctx;
std::vector<Fiber> fibers;
int current;
int nthreads;
int order;  // 0 forward, 1 reverse, 2 depth-first (see qi_emu_set_order)
void (*kernel_call)(const uint64_t*);
const uint64_t* kernel_slots;
uint64_t slots[kMaxThreads / 32][32][8];

// Scheduling state of the running block: a queue of runnable threads, and
// arrival counts at each warp's barrier and at the block barrier. A warp
// barrier opens when its 32 lanes have arrived, the block barrier when
// every thread that has not exited has.
std::vector<int> ready;  // ring buffer of thread indices, power-of-two size
size_t ready_head, ready_len, ready_mask;
int warp_arrived[kMaxThreads / 32];
int block_arrived, exited;

void push_ready(int i) {
  ready[(ready_head + ready_len) & ready_mask] = i;
  ready_len++;
  fibers[i].st = READY;
}

void push_front(int i) {
  ready_head = (ready_head - 1) & ready_mask;
  ready[ready_head] = i;
  ready_len++;
  fibers[i].st = READY;
}

int pop_ready() {
  if (ready_len == 0) return -1;
  const int i = ready[ready_head];
  ready_head = (ready_head + 1) & ready_mask;
  ready_len--;
  return i;
}

// release_range makes threads [lo, hi) runnable: queued behind the others
// in forward or reverse order, or, depth-first, ahead of them, so that the
// warp which passed a barrier runs on as far as it can. The orders expose
// kernels that rely on an order of threads between barriers.
void release_range(int lo, int hi) {
  switch (order) {
  case 1:
    for (int i = hi - 1; i >= lo; i--) push_ready(i);
    break;
  case 2:
    for (int i = hi - 1; i >= lo; i--) push_front(i);
    break;
  default:
    for (int i = lo; i < hi; i++) push_ready(i);
  }
}

void release_block() {
  std::vector<int> waiting;
  for (int i = 0; i < nthreads; i++)
    if (fibers[i].st == WAIT_BLOCK) waiting.push_back(i);
  if (order == 1) std::reverse(waiting.begin(), waiting.end());
  for (int i : waiting) push_ready(i);
  block_arrived = 0;
}

void check_block() {
  if (block_arrived > 0 && block_arrived + exited == nthreads) release_block();
}

void switch_to(Context* save, Context* to) {
#if defined(__x86_64__)
  qi_emu_switch(&save->sp, to->sp);
#else
  swapcontext(&save->uc, &to->uc);
#endif
}

void set_thread(int i) {
  current = i;
  qi_emu_warp_slots = slots[i >> 5];
  if (blockDim.y == 1 && blockDim.z == 1) {
    threadIdx.x = (unsigned)i;
    return;
  }
  threadIdx.x = (unsigned)(i % blockDim.x);
  threadIdx.y = (unsigned)(i / blockDim.x % blockDim.y);
  threadIdx.z = (unsigned)(i / (blockDim.x * blockDim.y));
}

// yield leaves the current thread (already marked waiting or done) and
// resumes the next runnable one, or the scheduler when there is none.
void yield() {
  Fiber& me = fibers[current];
  const int next = pop_ready();
  if (next < 0) {
    switch_to(&me.ctx, &sched_ctx);
    return;
  }
  if (&fibers[next] == &me) {
    set_thread(next);
    return;
  }
  set_thread(next);
  switch_to(&me.ctx, &fibers[next].ctx);
}

void fiber_main() {
  kernel_call(kernel_slots);
  fibers[current].st = DONE;
  exited++;
  check_block();
  yield();
}

// start_fiber prepares fiber i to enter fiber_main on its first resume.
void start_fiber(int i) {
  Fiber& f = fibers[i];
#if defined(__x86_64__)
  // The first switch pops six registers and returns into fiber_main with
  // the stack aligned as after a call (rsp+8 a multiple of 16).
  uintptr_t top = ((uintptr_t)(f.stack + kStack) & ~(uintptr_t)15) - 16;
  void** sp = (void**)top;
  *sp = (void*)fiber_main;
  for (int r = 0; r < 6; r++) *--sp = nullptr;
  f.ctx.sp = sp;
#else
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = f.stack;
  f.ctx.uc.uc_stack.ss_size = kStack;
  f.ctx.uc.uc_link = nullptr;
  makecontext(&f.ctx.uc, (void (*)())fiber_main, 0);
#endif
}

void wait_warp() {
  const int w = current / 32;
  fibers[current].st = WAIT_WARP;
  if (++warp_arrived[w] == 32) {
    warp_arrived[w] = 0;
    release_range(32 * w, 32 * w + 32);
  }
  yield();
}

void wait_block() {
  fibers[current].st = WAIT_BLOCK;
  block_arrived++;
  check_block();
  yield();
}

// run_block runs every thread of the current block to completion, or
// returns a description of the deadlock that stops it.
std::string run_block() {
  if (ready.size() < (size_t)nthreads) {
    size_t n = 1;
    while (n < (size_t)nthreads) n <<= 1;
    ready.resize(n);
  }
  ready_mask = ready.size() - 1;
  ready_head = ready_len = 0;
  block_arrived = exited = 0;
  for (int w = 0; w < nthreads / 32; w++) warp_arrived[w] = 0;
  for (int i = 0; i < nthreads; i++) start_fiber(i);
  release_range(0, nthreads);
  const int first = pop_ready();
  set_thread(first);
  switch_to(&sched_ctx, &fibers[first].ctx);
  // Back here only when no thread can run.
  if (exited == nthreads) return "";
  int at_block = 0, at_warp = 0;
  for (int i = 0; i < nthreads; i++) {
    at_block += fibers[i].st == WAIT_BLOCK;
    at_warp += fibers[i].st == WAIT_WARP;
  }
  char msg[256];
  snprintf(msg, sizeof msg,
           "deadlock in block (%u,%u,%u): %d threads at __syncthreads, %d at a warp operation, %d exited; "
           "a warp operation needs all 32 lanes and a barrier every live thread",
           blockIdx.x, blockIdx.y, blockIdx.z, at_block, at_warp, exited);
  return msg;
}

const Entry* table(int arch, int* n) {
  if (arch == 80) {
    *n = qi_emu_n80;
    return qi_emu_entries80;
  }
  if (arch == 61) {
    *n = qi_emu_n61;
    return qi_emu_entries61;
  }
  *n = 0;
  return nullptr;
}

std::string last_error;

}  // namespace

void qi_emu_syncthreads() { wait_block(); }
void qi_emu_warp_barrier() { wait_warp(); }

float qi_emu_h2f(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    const float f = (float)mant * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t qi_emu_f2h(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  const uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
  const int32_t exp = (int32_t)((b >> 23) & 0xff);
  const uint32_t mant = b & 0x7fffff;
  if (exp == 0xff) return mant ? (uint16_t)(sign | 0x7e00 | (mant >> 13)) : (uint16_t)(sign | 0x7c00);
  const int32_t e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const uint32_t m = mant | 0x800000;
    const uint32_t shift = (uint32_t)(14 - e);
    const uint32_t half = 1u << (shift - 1);
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t q = ((uint32_t)e << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
  return (uint16_t)(sign | q);
}

// ldmatrix .x4: lane l receives in r[j] the 4 bytes at row l/4, word l%4
// of matrix j, whose row i lane 8j+i addressed.
void qi_emu_ldsm_x4(int r[4], const void* row) {
  const int lane = (int)(threadIdx.x & 31);
  memcpy(qi_emu_slot(lane), &row, sizeof row);
  qi_emu_warp_barrier();
  for (int j = 0; j < 4; j++) {
    const char* p;
    memcpy(&p, qi_emu_slot(8 * j + lane / 4), sizeof p);
    memcpy(&r[j], p + 4 * (lane % 4), 4);
  }
  qi_emu_warp_barrier();
}

static int8_t byte_of(uint64_t* s, int word, int b) { return (int8_t)(((uint32_t*)s)[word] >> (8 * b)); }

// mma.sync.m16n8k32 s8: A is 16x32 row-major, B 32x8 column-major; lane
// (g, t) = (l/4, l%4) holds A[g][4t..4t+3] in a0, A[g+8][4t..] in a1,
// A[g][16+4t..] in a2, A[g+8][16+4t..] in a3, B[4t..4t+3][g] in b0,
// B[16+4t..][g] in b1, and D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1].
void qi_emu_mma_k32(int c[4], const int a[4], const int b[2]) {
  const int lane = (int)(threadIdx.x & 31);
  uint32_t* s = (uint32_t*)qi_emu_slot(lane);
  for (int i = 0; i < 4; i++) s[i] = (uint32_t)a[i];
  s[4] = (uint32_t)b[0];
  s[5] = (uint32_t)b[1];
  qi_emu_warp_barrier();
  const int g = lane / 4, t = lane % 4;
  int d[4];
  for (int e = 0; e < 4; e++) {
    const int row = g + 8 * (e / 2), col = 2 * t + e % 2;
    int sum = c[e];
    for (int k = 0; k < 32; k++) {
      const int av = byte_of(qi_emu_slot((row % 8) * 4 + (k % 16) / 4), row / 8 + 2 * (k / 16), k % 4);
      const int bv = byte_of(qi_emu_slot(col * 4 + (k % 16) / 4), 4 + k / 16, k % 4);
      sum += av * bv;
    }
    d[e] = sum;
  }
  qi_emu_warp_barrier();
  for (int e = 0; e < 4; e++) c[e] = d[e];
}

// mma.sync.m16n8k16 s8: a0 = A[g][4t..4t+3], a1 = A[g+8][4t..],
// b = B[4t..4t+3][g]; D as for k32.
void qi_emu_mma_k16(int c[4], int a0, int a1, int b) {
  const int lane = (int)(threadIdx.x & 31);
  uint32_t* s = (uint32_t*)qi_emu_slot(lane);
  s[0] = (uint32_t)a0;
  s[1] = (uint32_t)a1;
  s[2] = (uint32_t)b;
  qi_emu_warp_barrier();
  const int g = lane / 4, t = lane % 4;
  int d[4];
  for (int e = 0; e < 4; e++) {
    const int row = g + 8 * (e / 2), col = 2 * t + e % 2;
    int sum = c[e];
    for (int k = 0; k < 16; k++) {
      const int av = byte_of(qi_emu_slot((row % 8) * 4 + k / 4), row / 8, k % 4);
      const int bv = byte_of(qi_emu_slot(col * 4 + k / 4), 2, k % 4);
      sum += av * bv;
    }
    d[e] = sum;
  }
  qi_emu_warp_barrier();
  for (int e = 0; e < 4; e++) c[e] = d[e];
}

extern "C" int qi_emu_lookup(int arch, const char* name, int* nparams) {
  int n;
  const Entry* tab = table(arch, &n);
  for (int i = 0; i < n; i++) {
    if (strcmp(tab[i].name, name) == 0) {
      *nparams = tab[i].nparams;
      return i;
    }
  }
  return -1;
}

extern "C" void qi_emu_set_order(int o) {
  std::lock_guard<std::mutex> lock(launch_mu);
  order = o;
}

extern "C" const char* qi_emu_launch(int arch, int index, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                     unsigned by, unsigned bz, const uint64_t* params) {
  std::lock_guard<std::mutex> lock(launch_mu);
  int n;
  const Entry* tab = table(arch, &n);
  if (index < 0 || index >= n) return "no such kernel";
  const unsigned threads = bx * by * bz;
  if (threads == 0 || threads > (unsigned)kMaxThreads || threads % 32 != 0) {
    last_error = "block of " + std::to_string(threads) + " threads: the emulator runs whole warps, at most 1024";
    return last_error.c_str();
  }
  if (fibers.size() < threads) {
    size_t old = fibers.size();
    fibers.resize(threads);
    for (size_t i = old; i < threads; i++) fibers[i].stack = (char*)malloc(kStack);
  }
  nthreads = (int)threads;
  blockDim = dim3{bx, by, bz};
  gridDim = dim3{gx, gy, gz};
  kernel_call = tab[index].call;
  kernel_slots = params;
  for (unsigned z = 0; z < gz; z++) {
    for (unsigned y = 0; y < gy; y++) {
      for (unsigned x = 0; x < gx; x++) {
        blockIdx = uint3{x, y, z};
        std::string err = run_block();
        if (!err.empty()) {
          last_error = std::string(tab[index].name) + ": " + err;
          // The stuck fibers are abandoned: their stacks are reused.
          return last_error.c_str();
        }
      }
    }
  }
  return nullptr;
}
