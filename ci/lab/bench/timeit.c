/* timeit [-e FILE] N CMD [ARG...]: run CMD N times (stdout to /dev/null; stderr too, or appended
 * to FILE) and print each run's wall time in seconds, one per line. The overhead benchmark times
 * m2mfuzz and the C loop with the same clock in the same boot, and keeps what each prints of its
 * own clock on stderr. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *err = "/dev/null";
	if (argc > 2 && !strcmp(argv[1], "-e")) {
		err = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: timeit [-e FILE] N CMD [ARG...]\n");
		return 2;
	}
	int n = atoi(argv[1]);
	for (int i = 0; i < n; i++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		pid_t pid = fork();
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);
			int e = open(err, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (null < 0 || e < 0)
				_exit(127);
			dup2(null, 1);
			dup2(e, 2);
			execv(argv[2], argv + 2);
			_exit(127);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (!WIFEXITED(st) || WEXITSTATUS(st) == 127) {
			fprintf(stderr, "timeit: %s failed (status 0x%x)\n", argv[2], st);
			return 1;
		}
		printf("%.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
	}
	return 0;
}
