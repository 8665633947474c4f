/* timeit N CMD [ARG...]: run CMD N times (stdout and stderr to /dev/null) and print each run's
 * wall time in seconds, one per line. The overhead benchmark times m2mfuzz and the C loop with
 * the same clock in the same boot. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: timeit N CMD [ARG...]\n");
		return 2;
	}
	int n = atoi(argv[1]);
	for (int i = 0; i < n; i++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		pid_t pid = fork();
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 1);
			dup2(null, 2);
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
