/*
 * race-single [ITERATIONS] [NODE]: the best one thread can do against vim2m.race_mode's
 * window: on one vim2m context, every job is started by a QBUF (where race_mode sleeps
 * with the queue lock dropped) and followed at once, from the same thread, by each way to
 * cancel it: STREAMOFF of either queue, DQBUF, REQBUFS(0) and close. Each iteration opens
 * the context afresh and runs five such jobs. A QBUF that took 2 ms or more ran the job's
 * device_run with the window open: the program counts them ("windows").
 * Exit 1 when the kernel logged the symptom (a WARNING in vb2_buffer_done), else 0.
 */
#include "race-common.h"

#define CAP V4L2_BUF_TYPE_VIDEO_CAPTURE
#define OUT V4L2_BUF_TYPE_VIDEO_OUTPUT

static long windows, qbufs, qbuf_errors, other_errors;

/* QBUF, counting the calls that ran device_run's window. */
static void tq(int fd, unsigned int type, unsigned int index)
{
	long long t = now_ns();
	int r = qbuf(fd, type, index);

	qbufs++;
	if (r)
		qbuf_errors++;
	if (now_ns() - t >= WINDOW_NS)
		windows++;
}

static void chk(int r)
{
	if (r && r != -EAGAIN && r != -EBUSY)
		other_errors++;
}

int main(int argc, char **argv)
{
	long iterations = argc > 1 ? atol(argv[1]) : 200, i;
	const char *node = argc > 2 ? argv[2] : NULL;
	char path[64], line[512];
	unsigned int flags = 0;
	struct pollfd p;
	long long start;
	int fd, kfd, symptom;

	kfd = kmsg_open();
	fd = open_vim2m(node, path, sizeof(path));
	setup(fd);
	start = now_ns();
	for (i = 0; i < iterations; i++) {
		chk(stream(fd, OUT, 1));
		chk(stream(fd, CAP, 1));
		/* a job that completes: QBUF, then wait and DQBUF */
		tq(fd, CAP, 3);
		tq(fd, OUT, 3);
		p.fd = fd;
		p.events = POLLIN | POLLOUT;
		poll(&p, 1, 100);
		while (dqbuf(fd, CAP, &flags) >= 0 || dqbuf(fd, OUT, &flags) >= 0)
			;
		/* STREAMOFF CAPTURE right after the QBUF that started the job */
		tq(fd, CAP, 0);
		tq(fd, OUT, 0);
		chk(stream(fd, CAP, 0));
		chk(stream(fd, CAP, 1));
		/* the job started by the CAPTURE QBUF, then STREAMOFF OUTPUT */
		tq(fd, OUT, 1);
		tq(fd, CAP, 1);
		chk(stream(fd, OUT, 0));
		chk(stream(fd, OUT, 1));
		/* DQBUF, REQBUFS(0) (busy), STREAMOFF, REQBUFS(0), REQBUFS again */
		tq(fd, CAP, 2);
		tq(fd, OUT, 2);
		dqbuf(fd, CAP, &flags);
		dqbuf(fd, OUT, &flags);
		chk(reqbufs(fd, CAP, 0));
		chk(stream(fd, CAP, 0));
		chk(reqbufs(fd, CAP, 0));
		chk(reqbufs(fd, CAP, NBUF));
		chk(stream(fd, CAP, 1));
		/* close with the job just started, then a fresh context */
		tq(fd, CAP, 0);
		tq(fd, OUT, 3);
		close(fd);
		fd = open_vim2m(node, path, sizeof(path));
		setup(fd);
	}
	close(fd);
	usleep(200000); /* the last jobs' completion work has run */
	symptom = kmsg_symptom(kfd, line, sizeof(line));
	fprintf(stderr,
		"race-single: %s: %ld iterations in %.1f s, %ld QBUF (%ld failed), %ld windows "
		"(QBUF >= 2 ms), %ld other ioctl errors; symptom: %s\n",
		path, iterations, (now_ns() - start) / 1e9, qbufs, qbuf_errors, windows,
		other_errors, symptom ? line : "none");
	return symptom;
}
