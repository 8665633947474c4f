/* loop prologue|ioctls|jobs N: the overhead benchmark's limit, a plain C loop. The prologue of the
 * benchmark's programs (open vim2m, transaction time 1 ms, formats, 4 buffers a queue), then N
 * QUERYBUFs, or N/4 m2m jobs (QBUF out, QBUF cap, DQBUF out, DQBUF cap after a poll), each with
 * the C reproducer's own helpers so the ioctls and their arguments are the programs'. Nothing is
 * printed per op (a reproducer prints every op, unbuffered; a loop that did would flatter the
 * harness). Prints to stderr the time from the first op after the node search to the last, as
 * `m2mfuzz run --timings` does: one JSON line of its keys (run_ms, ops, us_per_op). Exit status
 * 1, with a count on stderr, if any op failed. Built with -I src/repro (for preamble.c) by the
 * overhead benchmark (lab/src/checks/bench_overhead.rs). */
#include "preamble.c"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: loop prologue|ioctls|jobs N\n");
		return 2;
	}
	const char *mode = argv[1];
	long n = atol(argv[2]), failed = 0;
	static struct ctx c0 = { .fd = -1, .media = -1 };
#define DO(call) (ops++, failed += (call) < 0)
	if (open_node(&c0, "vim2m") < 0) {
		perror("open_node vim2m");
		return 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long ops = 0; /* counted by DO, from the first op after the node search */
	{
		struct v4l2_ext_control c = { .id = 0x981900, .value64 = 1LL };
		struct v4l2_ext_controls cs = { .which = V4L2_CTRL_WHICH_CUR_VAL, .count = 1, .controls = &c };
		DO(xioctl(c0.fd, VIDIOC_S_EXT_CTRLS, &cs));
	}
	DO(do_fmt(&c0, 0, VIDIOC_S_FMT, 0x50424752, 64, 48, 1));
	DO(do_fmt(&c0, 1, VIDIOC_S_FMT, 0x50424752, 64, 48, 1));
	DO(do_reqbufs(&c0, 0, 4, V4L2_MEMORY_MMAP));
	DO(do_reqbufs(&c0, 1, 4, V4L2_MEMORY_MMAP));
	if (!strcmp(mode, "ioctls")) {
		for (long i = 0; i < n; i++)
			DO(do_buf(&c0, VIDIOC_QUERYBUF, 0, i % 4, -1, -1, -1, -1, -1, -1));
	} else if (!strcmp(mode, "jobs")) {
		DO(do_stream(&c0, VIDIOC_STREAMON, 0));
		DO(do_stream(&c0, VIDIOC_STREAMON, 1));
		for (long i = 0; i < n / 4; i++) {
			DO(do_buf(&c0, VIDIOC_QBUF, 0, 0, -1, -1, -1, 6144, -1, -1));
			DO(do_buf(&c0, VIDIOC_QBUF, 1, 0, -1, -1, -1, -1, -1, -1));
			DO(do_dqbuf(&c0, 0, -1, 2000));
			DO(do_dqbuf(&c0, 1, -1, 2000));
		}
	} else if (strcmp(mode, "prologue")) {
		fprintf(stderr, "loop: unknown mode %s\n", mode);
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double us = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
	/* One JSON line with the keys of `m2mfuzz run --timings` (m2mfuzz::exec::RunTimings). */
	fprintf(stderr, "{\"run_ms\":%.3f,\"ops\":%ld,\"us_per_op\":%.3f}\n", us / 1e3, ops, us / (ops ? ops : 1));
	if (failed) {
		fprintf(stderr, "loop %s: %ld ops failed\n", mode, failed);
		return 1;
	}
	return 0;
}
