#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/dma-buf.h>
#include <linux/media.h>
#include <linux/sync_file.h>
#include <linux/videodev2.h>

/* sw_sync has no public header (drivers/dma-buf/sw_sync.c). */
struct sw_sync_create_fence_data { __u32 value; char name[32]; __s32 fence; };
#define SW_SYNC_IOC_CREATE_FENCE _IOWR('W', 0, struct sw_sync_create_fence_data)
#define SW_SYNC_IOC_INC _IOW('W', 1, __u32)

/* Not every reproducer uses every helper. */
#define HELPER static __attribute__((unused))

/* A published fence must signal this long after a wait gave up, or it is a hang. */
#define FENCE_DEADLINE_MS 5000

struct ctx {
	int fd, media, mplane;
	unsigned mem[2], sizeimage[2], planes[2], count[2];
	char path[32];
};

/* Counted atomically: program threads report at once. Ops are printed in the first round only. */
HELPER int ok_count, err_count, rounds;
/* FINDING lines printed: a repeated program stops at the first. */
HELPER int findings;

/* The kernel log from the start on, read between rounds: a repeated program stops at the first
 * kernel report too (m2mfuzz watch, or a person, reads and judges it). */
HELPER int kmsg_fd = -1;

HELPER void kmsg_open(void)
{
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
}

/* 1 when the kernel logged a report (a WARNING, BUG, lockdep or hung-task report) since the last call. */
HELPER int kernel_reported(void)
{
	char rec[2048];
	int seen = 0;
	ssize_t n;
	if (kmsg_fd < 0)
		return 0;
	while ((n = read(kmsg_fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		if (n <= 0)
			continue;
		rec[n] = 0;
		if (strstr(rec, "WARNING:") || strstr(rec, "BUG:") || strstr(rec, "possible circular locking") ||
		    strstr(rec, "Invalid wait context") || strstr(rec, "blocked for more than")) {
			char *text = strchr(rec, ';');
			printf("kernel report: %s", text ? text + 1 : rec);
			seen = 1;
		}
	}
	return seen;
}

HELPER double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* The memory fault the last fill or check of this thread met (sig 0: none), for report(). */
HELPER __thread struct {
	int sig, code, again;
	unsigned long offset;
} last_fault;

HELPER const char *signal_name(int sig)
{
	return sig == SIGBUS ? "SIGBUS" : sig == SIGSEGV ? "SIGSEGV" : "signal";
}

HELPER const char *code_name(int sig, int code)
{
	static const char *bus[] = { "BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR",
				     "BUS_MCEERR_AO" };
	static const char *segv[] = { "SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR",
				      "SEGV_ACCADI", "SEGV_ADIDERR", "SEGV_ADIPERR", "SEGV_MTEAERR",
				      "SEGV_MTESERR", "SEGV_CPERR" };
	if (sig == SIGBUS && code >= 1 && code <= 5)
		return bus[code - 1];
	if (sig == SIGSEGV && code >= 1 && code <= 10)
		return segv[code - 1];
	return "code";
}

HELPER void report(int i, const char *op, long r)
{
	int err = errno;
	__atomic_fetch_add(r < 0 ? &err_count : &ok_count, 1, __ATOMIC_RELAXED);
	if (rounds) {
		last_fault.sig = 0;
		return;
	}
	if (r < 0 && last_fault.sig)
		printf("%4d %-60s FAULT%s (%s %s at offset 0x%lx)\n", i, op, last_fault.again ? " again" : "",
		       signal_name(last_fault.sig), code_name(last_fault.sig, last_fault.code),
		       last_fault.offset);
	else if (r < 0)
		printf("%4d %-60s %s\n", i, op, strerror(err));
	else
		printf("%4d %-60s ok %ld\n", i, op, r);
	last_fault.sig = 0;
}

/* Memory faults in fill and check, as m2mfuzz catches them: a SIGBUS or SIGSEGV the kernel
 * raises inside the mapping being accessed is the op's outcome (FAULT, and a memory-fault
 * finding: a mapping holds its buffer's memory). The handler maps anonymous memory over the
 * mapping from the faulting page on, so the access completes, and the pages are then made
 * inaccessible: a later access faults there and reports the first fault again. Any other fault
 * kills as it would without the handler. */
HELPER size_t page_size = 4096;
/* Per thread: program threads fill and check at once; the handler runs on the faulting one. */
HELPER __thread volatile uintptr_t guard_lo, guard_hi, fault_addr;
HELPER __thread volatile sig_atomic_t fault_sig, fault_code;
HELPER struct poisoned {
	uintptr_t lo, hi, addr;
	int sig, code;
} poisoned[16];
HELPER int n_poisoned;

HELPER void on_fault(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	struct sigaction dfl;
	(void)uc;
	if (si->si_code > 0 && a >= guard_lo && a < guard_hi) {
		uintptr_t lo = a & ~(uintptr_t)(page_size - 1);
		uintptr_t hi = (guard_hi + page_size - 1) & ~(uintptr_t)(page_size - 1);
		if (mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) != MAP_FAILED) {
			if (!fault_sig)
				fault_addr = a, fault_code = si->si_code, fault_sig = sig;
			return;
		}
	}
	/* Not ours: the default action (the fault comes again on return; kill() is raised again). */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

HELPER void install_fault_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

HELPER void guard_begin(const unsigned char *m, size_t len)
{
	fault_sig = 0;
	guard_lo = (uintptr_t)m, guard_hi = (uintptr_t)m + len;
	atomic_signal_fence(memory_order_seq_cst);
}

/* After a guarded access: 0 if it met no fault; else the fault noted for report(), the mapping
 * poisoned from there on, and the finding printed, titled title_pre SIGNAL title_post. */
HELPER int guard_end(const unsigned char *m, size_t len, const char *title_pre, const char *title_post)
{
	atomic_signal_fence(memory_order_seq_cst);
	guard_lo = guard_hi = 0;
	if (!fault_sig)
		return 0;
	uintptr_t a = fault_addr, lo = a & ~(uintptr_t)(page_size - 1);
	uintptr_t hi = ((uintptr_t)m + len + page_size - 1) & ~(uintptr_t)(page_size - 1);
	int sig = fault_sig, code = fault_code, again = 0;
	for (int i = 0; i < n_poisoned && sig == SIGSEGV && code == 2 /* SEGV_ACCERR */; i++)
		if (a >= poisoned[i].lo && a < poisoned[i].hi) {
			again = 1, a = poisoned[i].addr, sig = poisoned[i].sig, code = poisoned[i].code;
			break;
		}
	if (!again && n_poisoned < 16)
		poisoned[n_poisoned++] = (struct poisoned){ lo, hi, a, sig, code };
	mprotect((void *)lo, hi - lo, PROT_NONE);
	last_fault.sig = sig, last_fault.code = code, last_fault.again = again;
	last_fault.offset = (unsigned long)(a - (uintptr_t)m);
	if (!again) {
		printf("FINDING: memory-fault: %s%s%s\n", title_pre, signal_name(sig), title_post);
		__atomic_fetch_add(&findings, 1, __ATOMIC_RELAXED);
	}
	errno = EFAULT;
	return 1;
}

HELPER long do_fill(unsigned char *m, size_t len, unsigned char byte, const char *title_pre,
		    const char *title_post)
{
	guard_begin(m, len);
	memset(m, byte, len);
	return guard_end(m, len, title_pre, title_post) ? -1 : (long)len;
}

/* How many bytes differ from byte, or -1 after a fault. */
HELPER long count_differing(const unsigned char *m, size_t len, unsigned char byte, const char *title_pre,
			    const char *title_post)
{
	long differ = 0;
	guard_begin(m, len);
	for (size_t i = 0; i < len; i++)
		differ += m[i] != byte;
	return guard_end(m, len, title_pre, title_post) ? -1 : differ;
}

HELPER long xioctl(int fd, unsigned long req, void *arg)
{
	int r;
	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR);
	return r;
}

/* The first m2m node whose driver (and, after ':', video name) matches. */
HELPER int open_node(struct ctx *c, const char *sel)
{
	char drv[64], name[64] = "", p[96];
	const char *colon = strchr(sel, ':');
	snprintf(drv, sizeof(drv), "%.*s", colon ? (int)(colon - sel) : (int)strlen(sel), sel);
	if (colon)
		snprintf(name, sizeof(name), "%s", colon + 1);
	memset(c, 0, sizeof(*c));
	c->media = -1;
	for (int n = 0; n < 64; n++) {
		struct v4l2_capability cap;
		snprintf(c->path, sizeof(c->path), "/dev/video%d", n);
		int fd = open(c->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		memset(&cap, 0, sizeof(cap));
		unsigned caps = 0;
		if (!xioctl(fd, VIDIOC_QUERYCAP, &cap))
			caps = cap.capabilities & V4L2_CAP_DEVICE_CAPS ? cap.device_caps : cap.capabilities;
		int match = (caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE)) && !strcmp((char *)cap.driver, drv);
		if (match && name[0]) {
			char vn[64] = "";
			snprintf(p, sizeof(p), "/sys/class/video4linux/video%d/name", n);
			FILE *f = fopen(p, "r");
			if (f) {
				if (fgets(vn, sizeof(vn), f))
					vn[strcspn(vn, "\n")] = 0;
				fclose(f);
			}
			match = !strcmp(vn, name);
		}
		if (match) {
			c->fd = fd;
			c->mplane = !!(caps & V4L2_CAP_VIDEO_M2M_MPLANE);
			c->mem[0] = c->mem[1] = V4L2_MEMORY_MMAP;
			c->planes[0] = c->planes[1] = 1;
			return fd;
		}
		close(fd);
	}
	errno = ENODEV;
	return -1;
}

/* q: 0 OUTPUT, 1 CAPTURE; other values are raw buffer types. */
HELPER unsigned buf_type(struct ctx *c, unsigned q)
{
	if (q == 0)
		return c->mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT;
	if (q == 1)
		return c->mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE;
	return q;
}

HELPER long do_fmt(struct ctx *c, unsigned q, unsigned long req, __u32 fourcc, __u32 w, __u32 h, __u8 planes)
{
	struct v4l2_format f;
	memset(&f, 0, sizeof(f));
	f.type = buf_type(c, q);
	if (req == VIDIOC_S_FMT) {
		if (c->mplane) {
			f.fmt.pix_mp.width = w, f.fmt.pix_mp.height = h, f.fmt.pix_mp.pixelformat = fourcc;
			f.fmt.pix_mp.field = V4L2_FIELD_NONE, f.fmt.pix_mp.num_planes = planes;
		} else {
			f.fmt.pix.width = w, f.fmt.pix.height = h, f.fmt.pix.pixelformat = fourcc;
			f.fmt.pix.field = V4L2_FIELD_NONE;
		}
	}
	long r = xioctl(c->fd, req, &f);
	if (r == 0 && q < 2) {
		c->sizeimage[q] = c->mplane ? f.fmt.pix_mp.plane_fmt[0].sizeimage : f.fmt.pix.sizeimage;
		c->planes[q] = c->mplane && f.fmt.pix_mp.num_planes ? f.fmt.pix_mp.num_planes : 1;
	}
	return r;
}

HELPER long do_reqbufs(struct ctx *c, unsigned q, unsigned count, unsigned mem)
{
	struct v4l2_requestbuffers rb;
	memset(&rb, 0, sizeof(rb));
	rb.count = count, rb.type = buf_type(c, q), rb.memory = mem;
	long r = xioctl(c->fd, VIDIOC_REQBUFS, &rb);
	if (r == 0 && q < 2)
		c->mem[q] = mem, c->count[q] = rb.count;
	return r ? r : (long)rb.count;
}

HELPER long do_create_bufs(struct ctx *c, unsigned q, unsigned count, unsigned mem)
{
	struct v4l2_create_buffers cb;
	memset(&cb, 0, sizeof(cb));
	cb.count = count, cb.memory = mem, cb.format.type = buf_type(c, q);
	if (xioctl(c->fd, VIDIOC_G_FMT, &cb.format))
		return -1;
	long r = xioctl(c->fd, VIDIOC_CREATE_BUFS, &cb);
	if (r == 0 && q < 2 && cb.index + cb.count > c->count[q])
		c->mem[q] = mem, c->count[q] = cb.index + cb.count;
	else if (r == 0 && q < 2)
		c->mem[q] = mem;
	return r ? r : (long)cb.index;
}

/* QBUF, QUERYBUF or DQBUF; returns the index (DQBUF/QBUF) or flags (QUERYBUF). */
HELPER long do_buf(struct ctx *c, unsigned long req, unsigned q, unsigned index, int mem, int dmabuf,
		   int request, long bytesused, long flags, long field)
{
	struct v4l2_buffer b;
	struct v4l2_plane planes[VIDEO_MAX_PLANES];
	memset(&b, 0, sizeof(b));
	memset(planes, 0, sizeof(planes));
	b.index = index, b.type = buf_type(c, q);
	b.memory = mem >= 0 ? (unsigned)mem : c->mem[q < 2 ? q : 0];
	if (c->mplane)
		b.m.planes = planes, b.length = VIDEO_MAX_PLANES;
	if (req == VIDIOC_QBUF) {
		unsigned used = bytesused >= 0 ? (unsigned)bytesused : (q == 0 ? c->sizeimage[0] : 0);
		b.flags = flags >= 0 ? (unsigned)flags : 0;
		b.field = field >= 0 ? (unsigned)field : (q == 0 ? V4L2_FIELD_NONE : V4L2_FIELD_ANY);
		long dlen = dmabuf >= 0 ? lseek(dmabuf, 0, SEEK_END) : 0;
		if (c->mplane) {
			b.length = c->planes[q < 2 ? q : 0];
			planes[0].bytesused = used;
			if (dmabuf >= 0)
				planes[0].m.fd = dmabuf, planes[0].length = dlen;
		} else {
			b.bytesused = used;
			if (dmabuf >= 0)
				b.m.fd = dmabuf, b.length = dlen;
		}
		if (request >= 0)
			b.flags |= V4L2_BUF_FLAG_REQUEST_FD, b.request_fd = request;
	}
	long r = xioctl(c->fd, req, &b);
	if (r)
		return r;
	if (req == VIDIOC_DQBUF && (b.flags & V4L2_BUF_FLAG_ERROR))
		printf("     (buffer %u returned with ERROR)\n", b.index);
	return req == VIDIOC_QUERYBUF ? (long)b.flags : (long)b.index;
}

HELPER long do_dqbuf(struct ctx *c, unsigned q, int mem, int timeout_ms)
{
	struct pollfd p = { c->fd, q == 0 ? POLLOUT : POLLIN, 0 };
	if (poll(&p, 1, timeout_ms) == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	return do_buf(c, VIDIOC_DQBUF, q, 0, mem, -1, -1, -1, -1, -1);
}

/* The stream op: a client keeping every MMAP buffer of both queues queued, re-queueing each as
 * it comes back, until `jobs` CAPTURE buffers came back or none did for `timeout_ms` (or jobs x
 * timeout passed, at most 60 s); with `working` (the segment's threads with other ops still
 * running), until that is 0 instead of the timeout rule. Returns the CAPTURE buffers dequeued. */
HELPER long do_stream_client(struct ctx *c, unsigned jobs, unsigned timeout_ms, int *working)
{
	if (c->mem[0] != V4L2_MEMORY_MMAP || c->mem[1] != V4L2_MEMORY_MMAP || !c->count[0] || !c->count[1]) {
		errno = EINVAL;
		return -1;
	}
	unsigned n[2] = { c->count[0] < 32 ? c->count[0] : 32, c->count[1] < 32 ? c->count[1] : 32 };
	char mine[2][32] = { { 0 } };
	double t0 = now_s(), last = t0;
	double budget = (double)timeout_ms * (jobs ? jobs : 1) / 1000.0;
	double end = t0 + (budget < 60.0 ? budget : 60.0);
	long capture = 0;
	while ((unsigned)capture < jobs && !(working && __atomic_load_n(working, __ATOMIC_SEQ_CST) == 0)) {
		for (unsigned q = 0; q < 2; q++)
			for (unsigned i = 0; i < n[q]; i++)
				if (!mine[q][i] && do_buf(c, VIDIOC_QBUF, q, i, V4L2_MEMORY_MMAP, -1, -1, -1, -1, -1) >= 0)
					mine[q][i] = 1;
		/* A client of other threads waits out a stopped stream until they are done. */
		double now = now_s(), until = working ? end : last + timeout_ms / 1000.0;
		if (until > end)
			until = end;
		if (now >= until)
			break;
		struct pollfd p = { c->fd, POLLIN | POLLOUT, 0 };
		int ms = (int)((until - now) * 1000) + 1;
		int pr = poll(&p, 1, working && ms > 10 ? 10 : ms);
		if (pr < 0 && errno == EINTR)
			continue;
		int got = 0;
		for (int q = 1; q >= 0; q--) {
			long r;
			while ((r = do_buf(c, VIDIOC_DQBUF, (unsigned)q, 0, V4L2_MEMORY_MMAP, -1, -1, -1, -1, -1)) >= 0) {
				got = 1;
				if (r < 32)
					mine[q][r] = 0;
				capture += q == 1;
			}
		}
		if (got) {
			last = now_s();
			continue;
		}
		/* No progress: buffers a STREAMOFF handed back or another thread dequeued are
		 * neither queued nor done; queue those again next round. */
		for (unsigned q = 0; q < 2; q++)
			for (unsigned i = 0; i < n[q]; i++) {
				long f = mine[q][i] ? do_buf(c, VIDIOC_QUERYBUF, q, i, V4L2_MEMORY_MMAP, -1, -1, -1, -1, -1) : -1;
				if (f >= 0 && !(f & (V4L2_BUF_FLAG_QUEUED | V4L2_BUF_FLAG_DONE)))
					mine[q][i] = 0;
			}
		if (pr > 0)
			usleep(2000);
	}
	return capture;
}

HELPER long do_stream(struct ctx *c, unsigned long req, unsigned q)
{
	int t = buf_type(c, q);
	return xioctl(c->fd, req, &t);
}

HELPER long do_expbuf(struct ctx *c, unsigned q, unsigned index, unsigned plane, long flags)
{
	struct v4l2_exportbuffer e;
	memset(&e, 0, sizeof(e));
	e.type = buf_type(c, q), e.index = index, e.plane = plane;
	e.flags = flags >= 0 ? (unsigned)flags : O_CLOEXEC | O_RDWR;
	return xioctl(c->fd, VIDIOC_EXPBUF, &e) ? -1 : e.fd;
}

HELPER void *do_mmap(struct ctx *c, unsigned q, unsigned index, unsigned plane, size_t *len)
{
	struct v4l2_buffer b;
	struct v4l2_plane planes[VIDEO_MAX_PLANES];
	memset(&b, 0, sizeof(b));
	memset(planes, 0, sizeof(planes));
	b.index = index, b.type = buf_type(c, q), b.memory = V4L2_MEMORY_MMAP;
	if (c->mplane)
		b.m.planes = planes, b.length = VIDEO_MAX_PLANES;
	if (xioctl(c->fd, VIDIOC_QUERYBUF, &b))
		return NULL;
	off_t off = c->mplane ? planes[plane].m.mem_offset : b.m.offset;
	*len = c->mplane ? planes[plane].length : b.length;
	void *m = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, off);
	return m == MAP_FAILED ? NULL : m;
}

/* SYNC_IOC_FILE_INFO: status, and the first fence's driver/timeline. */
HELPER int fence_status(int fd, char *driver, char *timeline)
{
	struct sync_fence_info fi[4];
	struct sync_file_info info;
	memset(&info, 0, sizeof(info));
	memset(fi, 0, sizeof(fi));
	info.num_fences = 4;
	info.sync_fence_info = (uintptr_t)fi;
	if (xioctl(fd, SYNC_IOC_FILE_INFO, &info))
		return -1000;
	snprintf(driver, 32, "%s", info.num_fences ? fi[0].driver_name : "");
	snprintf(timeline, 32, "%s", info.num_fences ? fi[0].obj_name : "");
	return info.status;
}

HELPER int poll_in(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	return poll(&p, 1, ms);
}

/* A timeline without its context number: vim2m-cap-22 -> vim2m-cap. */
HELPER void stable_timeline(char *t)
{
	char *d = strrchr(t, '-');
	if (d && d[1] && strspn(d + 1, "0123456789") == strlen(d + 1))
		*d = 0;
}

/* Wait on a sync_file; a vb2 (producer) fence still pending after the deadline is a hang. */
HELPER long do_wait(int fd, int ms)
{
	char drv[32], tl[32];
	if (poll_in(fd, ms) > 0)
		return 1;
	if (fence_status(fd, drv, tl) == 0 && !strcmp(drv, "vb2")) {
		if (poll_in(fd, FENCE_DEADLINE_MS) > 0)
			return 1;
		stable_timeline(tl);
		printf("FINDING: hang: release fence hang on %s\n", tl);
		__atomic_fetch_add(&findings, 1, __ATOMIC_RELAXED);
	}
	errno = ETIMEDOUT;
	return -1;
}

/* Buffers the kernel said are complete, for the stale-read check: 1 by a sync_file with no
 * producer fence (clause 1 of the release-fence contract), 2 by DQBUF, 3 by a vb2 (producer)
 * fence that signalled (clause 2). */
HELPER int complete_buf[16][2][32];

/* 3 for a sync_file whose first fence is a producer (vb2) one, else 1. */
HELPER int said_by(const char *driver)
{
	return strcmp(driver, "vb2") ? 1 : 3;
}

HELPER void stale_finding(int how, const char *driver)
{
	__atomic_fetch_add(&findings, 1, __ATOMIC_RELAXED);
	if (how == 3)
		printf("FINDING: stale-read: release fence signalled before the frame was written on %s\n",
		       driver);
	else
		printf("FINDING: stale-read: stale read after %s on %s\n", how == 2 ? "DQBUF" : "fence",
		       driver);
}

HELPER long do_check(const unsigned char *m, size_t len, unsigned char byte, int ctx, int q, int index,
		     const char *driver, const char *title_pre, const char *title_post)
{
	long differ = count_differing(m, len, byte, title_pre, title_post);
	if (differ > 0 && q == 1 && ctx >= 0 && complete_buf[ctx][1][index & 31])
		stale_finding(complete_buf[ctx][1][index & 31], driver);
	return differ;
}

/* A check against the canary the mapping was filled with: stale only if all of it is still there. */
HELPER long do_check_canary(const unsigned char *m, size_t len, unsigned char byte, int ctx, int q,
			    int index, const char *driver, const char *title_pre, const char *title_post)
{
	long differ = count_differing(m, len, byte, title_pre, title_post);
	if (!differ && len && q == 1 && ctx >= 0 && complete_buf[ctx][1][index & 31])
		stale_finding(complete_buf[ctx][1][index & 31], driver);
	return differ;
}
