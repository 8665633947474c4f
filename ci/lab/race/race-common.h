/*
 * Shared helpers of the race programs (ci/lab/race/): one vim2m context, small frames,
 * 1 ms jobs, and a scan of the kernel log for the symptom of vim2m.race_mode (a vb2
 * "buffer done" warning: vb2_buffer_done on a buffer that is not the driver's).
 * Static, libc and uapi headers only; built by ci/lab/build-guest-bins.sh.
 */
#ifndef RACE_COMMON_H
#define RACE_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define NBUF 4
#define TRANS_TIME_MSEC 0x00981900 /* vim2m's job time control */
/* A QBUF that took this long ran device_run with race_mode's window (2 ms sleep). */
#define WINDOW_NS 2000000LL

static inline long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static inline void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (errno %d: %s)\n", errno, strerror(errno));
	exit(2);
}

/* The first /dev/videoN whose driver is vim2m, or the path given. */
static inline int open_vim2m(const char *path, char *found, size_t len)
{
	char p[32];
	int i, fd;

	if (path) {
		fd = open(path, O_RDWR | O_NONBLOCK);
		if (fd < 0)
			die("open %s", path);
		snprintf(found, len, "%s", path);
		return fd;
	}
	for (i = 0; i < 64; i++) {
		struct v4l2_capability cap;

		snprintf(p, sizeof(p), "/dev/video%d", i);
		fd = open(p, O_RDWR | O_NONBLOCK);
		if (fd < 0)
			continue;
		memset(&cap, 0, sizeof(cap));
		if (ioctl(fd, VIDIOC_QUERYCAP, &cap) == 0 && !strcmp((char *)cap.driver, "vim2m")) {
			snprintf(found, len, "%s", p);
			return fd;
		}
		close(fd);
	}
	errno = ENODEV;
	die("no vim2m node under /dev/video*");
	return -1;
}

/* 64x48 RGB565 on both queues, 1 ms jobs, NBUF MMAP buffers each. */
static inline void setup(int fd)
{
	struct v4l2_format f;
	struct v4l2_control c = { .id = TRANS_TIME_MSEC, .value = 1 };
	struct v4l2_requestbuffers rb;
	int q;

	for (q = 0; q < 2; q++) {
		memset(&f, 0, sizeof(f));
		f.type = q ? V4L2_BUF_TYPE_VIDEO_CAPTURE : V4L2_BUF_TYPE_VIDEO_OUTPUT;
		f.fmt.pix.width = 64;
		f.fmt.pix.height = 48;
		f.fmt.pix.pixelformat = V4L2_PIX_FMT_RGB565;
		f.fmt.pix.field = V4L2_FIELD_NONE;
		if (ioctl(fd, VIDIOC_S_FMT, &f))
			die("S_FMT");
		memset(&rb, 0, sizeof(rb));
		rb.count = NBUF;
		rb.type = f.type;
		rb.memory = V4L2_MEMORY_MMAP;
		if (ioctl(fd, VIDIOC_REQBUFS, &rb) || rb.count != NBUF)
			die("REQBUFS %u", rb.count);
	}
	if (ioctl(fd, VIDIOC_S_CTRL, &c))
		die("S_CTRL TRANS_TIME_MSEC");
}

static inline int qbuf(int fd, unsigned int type, unsigned int index)
{
	struct v4l2_buffer b;

	memset(&b, 0, sizeof(b));
	b.type = type;
	b.memory = V4L2_MEMORY_MMAP;
	b.index = index;
	b.field = V4L2_FIELD_NONE;
	return ioctl(fd, VIDIOC_QBUF, &b) ? -errno : 0;
}

/* Non-blocking DQBUF: the index, or -errno; *flags gets the buffer's flags. */
static inline int dqbuf(int fd, unsigned int type, unsigned int *flags)
{
	struct v4l2_buffer b;

	memset(&b, 0, sizeof(b));
	b.type = type;
	b.memory = V4L2_MEMORY_MMAP;
	if (ioctl(fd, VIDIOC_DQBUF, &b))
		return -errno;
	if (flags)
		*flags = b.flags;
	return b.index;
}

static inline int stream(int fd, unsigned int type, int on)
{
	int t = type;

	return ioctl(fd, on ? VIDIOC_STREAMON : VIDIOC_STREAMOFF, &t) ? -errno : 0;
}

static inline int reqbufs(int fd, unsigned int type, unsigned int count)
{
	struct v4l2_requestbuffers rb;

	memset(&rb, 0, sizeof(rb));
	rb.count = count;
	rb.type = type;
	rb.memory = V4L2_MEMORY_MMAP;
	return ioctl(fd, VIDIOC_REQBUFS, &rb) ? -errno : 0;
}

/* /dev/kmsg from now on, non-blocking. */
static inline int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd < 0)
		die("open /dev/kmsg");
	lseek(fd, 0, SEEK_END);
	return fd;
}

/*
 * Read what the kernel logged since the last call; 1 when a WARNING line names
 * vb2_buffer_done (copied to line), else 0.
 */
static inline int kmsg_symptom(int fd, char *line, size_t len)
{
	char rec[8192];
	ssize_t n;

	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue; /* overwritten records: go on with the next */
		if (n <= 0)
			return 0;
		rec[n] = 0;
		if (strstr(rec, "WARNING:") && strstr(rec, "vb2_buffer_done")) {
			char *text = strchr(rec, ';');
			size_t n = 0;

			for (text = text ? text + 1 : rec; *text && *text != '\n' && n + 1 < len; text++)
				line[n++] = *text;
			line[n] = 0;
			return 1;
		}
	}
}

#endif
