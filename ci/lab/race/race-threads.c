/*
 * race-threads [SECONDS] [NODE]: two threads on ONE vim2m context (one fd). The streamer
 * queues a CAPTURE and an OUTPUT buffer (the OUTPUT QBUF starts the job: with
 * vim2m.race_mode=1 its device_run sleeps 2 ms with the queue lock dropped), waits up to
 * 20 ms for the job and dequeues what is done; the toggler turns one queue off and on again, then the other, 1 ms
 * apart. The main thread watches the kernel log and stops both at the first WARNING in
 * vb2_buffer_done, or after SECONDS (default 60).
 * Exit 1 when the symptom showed, else 0. Prints the time to it and the counts to stderr.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "race-common.h"

#define CAP V4L2_BUF_TYPE_VIDEO_CAPTURE
#define OUT V4L2_BUF_TYPE_VIDEO_OUTPUT

static int fd;
static atomic_int stop;
static atomic_long slow, jobs_done, errored, toggles;

static void *streamer(void *arg)
{
	unsigned int i = 0, flags = 0;
	struct pollfd p = { .events = POLLIN | POLLOUT };
	long long t;
	int r;

	(void)arg;
	p.fd = fd;
	while (!atomic_load(&stop)) {
		qbuf(fd, CAP, i);
		t = now_ns();
		qbuf(fd, OUT, i);
		if (now_ns() - t >= WINDOW_NS)
			atomic_fetch_add(&slow, 1);
		poll(&p, 1, 20);
		while ((r = dqbuf(fd, CAP, &flags)) >= 0 || (r = dqbuf(fd, OUT, &flags)) >= 0) {
			atomic_fetch_add(&jobs_done, 1);
			if (flags & V4L2_BUF_FLAG_ERROR)
				atomic_fetch_add(&errored, 1);
		}
		i = (i + 1) % NBUF;
	}
	return NULL;
}

static void *toggler(void *arg)
{
	unsigned int type = CAP;

	(void)arg;
	while (!atomic_load(&stop)) {
		stream(fd, type, 0);
		stream(fd, type, 1);
		atomic_fetch_add(&toggles, 1);
		type = type == CAP ? OUT : CAP;
		usleep(1000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 60;
	const char *node = argc > 2 ? argv[2] : NULL;
	char path[64], line[512] = "";
	pthread_t a, b;
	long long start;
	int kfd, symptom = 0;
	double at = 0;

	kfd = kmsg_open();
	fd = open_vim2m(node, path, sizeof(path));
	setup(fd);
	if (stream(fd, OUT, 1) || stream(fd, CAP, 1))
		die("STREAMON");
	start = now_ns();
	if (pthread_create(&a, NULL, streamer, NULL) || pthread_create(&b, NULL, toggler, NULL))
		die("pthread_create");
	while ((now_ns() - start) / 1e9 < seconds) {
		usleep(20000);
		if (kmsg_symptom(kfd, line, sizeof(line))) {
			symptom = 1;
			at = (now_ns() - start) / 1e9;
			break;
		}
	}
	atomic_store(&stop, 1);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	close(fd);
	if (!symptom) {
		usleep(200000); /* the last jobs' completion work has run */
		if (kmsg_symptom(kfd, line, sizeof(line))) {
			symptom = 1;
			at = (now_ns() - start) / 1e9;
		}
	}
	fprintf(stderr,
		"race-threads: %s: %.1f s, %ld slow OUTPUT QBUFs (>= 2 ms: the window, or "
		"the lock), %ld buffers dequeued (%ld ERROR), %ld STREAMOFF/ON pairs; symptom: ",
		path, (now_ns() - start) / 1e9, atomic_load(&slow), atomic_load(&jobs_done),
		atomic_load(&errored), atomic_load(&toggles));
	if (symptom)
		fprintf(stderr, "after %.2f s: %s\n", at, line);
	else
		fprintf(stderr, "none\n");
	return symptom;
}
