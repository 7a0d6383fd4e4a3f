// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench: options, the files, the run. See cowbench.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cowbench.h"

/* ---------------------------------------------------------------- main --- */

static void usage(void)
{
	fprintf(stderr,
		"usage: cowbench [--quick] [--rounds N] [--warmup N] [--slices N] [--seed N]\n"
		"                [--dir DIR] [--read-dir DIR] [--write-mib N]\n"
		"                [--read-mib N] [--scale-mib N] [--append-mib N]\n"
		"                [--journal-records N] [--merge-records N] [--host-info FILE]\n"
		"                [--groups read,write,scale,memory,commit,journal,merge,append,run]\n"
		"Runs in the cowmap test VM; prints a table, then JSON between\n"
		"\"" JSON_BEGIN "\" and \"" JSON_END "\".\n"
		"--quick: tiny sizes, one round; checks that every row still runs.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char cpu[256] = "?", thp[128] = "?", far[32] = "?", line[512];
	size_t wmib = 64, rmib = 256, smib = 32, amib = 64;
	size_t jrec = 1048576, mrec = 16384;
	struct utsname u;
	FILE *f;

	C.rounds = 5;
	C.warmup = 1;
	C.slices = 16;
	C.dir = "/mnt/ext4/cowbench";
	C.seed = now_ns() | 1;
	C.pid = getpid();
	C.rfd = C.wfd = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--quick")) {
			C.quick = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--rounds"))
			C.rounds = atoi(v);
		else if (!strcmp(a, "--slices"))
			C.slices = atoi(v);
		else if (!strcmp(a, "--warmup"))
			C.warmup = atoi(v);
		else if (!strcmp(a, "--seed"))
			C.seed = strtoull(v, NULL, 0) | 1;
		else if (!strcmp(a, "--dir"))
			C.dir = v;
		else if (!strcmp(a, "--read-dir"))
			C.read_dir = v;
		else if (!strcmp(a, "--write-mib"))
			wmib = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--read-mib"))
			rmib = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--scale-mib"))
			smib = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--append-mib"))
			amib = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--journal-records"))
			jrec = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--merge-records"))
			mrec = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--host-info"))
			C.host_info = v;
		else if (!strcmp(a, "--groups"))
			C.groups = v;
		else
			usage();
	}
	C.write_size = wmib * MIB;
	C.read_size = rmib * MIB;
	C.scale_size = smib * MIB;
	C.append_size = amib * MIB;
	C.jrecords = jrec;
	C.mrecords = mrec;
	if (C.quick) {
		C.write_size = C.scale_size = C.append_size = MIB;
		C.read_size = 2 * MIB;
		C.rounds = 1;
		C.warmup = 0;
		C.slices = 4;
		C.jrecords = 4096;
		C.mrecords = 256;
	}
	if (C.rounds < 1 || C.rounds > MAX_ROUNDS || C.warmup < 0 || C.slices < 1 ||
	    !C.write_size || !C.read_size || !C.scale_size || !C.append_size || !C.jrecords || !C.mrecords)
		usage();
	if (C.scale_size > C.write_size) {
		fprintf(stderr, "cowbench: --scale-mib: row 3 maps the first part of the %zu MiB write file\n",
			C.write_size / MIB);
		exit(2);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	C.seed0 = C.seed;
	/* An exit through die(): no orphan, the journal limit restored. */
	atexit(journal_restore_param);
	atexit(many_restore_params);
	atexit(discard_all);

	uname(&u);
	f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			snprintf(cpu, sizeof(cpu), "%s", strchr(line, ':') + 2);
			cpu[strcspn(cpu, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	read_small("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp));
	read_small("/sys/kernel/debug/fault_around_bytes", far, sizeof(far));

	mkdir(C.dir, 0755);
	if (!C.read_dir) {
		/* The read file goes to tmpfs only if the disk is too small. */
		C.read_dir = C.dir;
		if (free_bytes(C.dir) < C.write_size + C.read_size + 16 * MIB) {
			C.read_dir = "/mnt/tmpfs/cowbench";
			fprintf(stderr, "# %s too small for the read file: using %s\n",
				C.dir, C.read_dir);
		}
	}
	mkdir(C.read_dir, 0755);
	fs_name(C.dir, C.wfs, sizeof(C.wfs));
	fs_name(C.read_dir, C.rfs, sizeof(C.rfs));

	fprintf(stderr, "# cowbench: kernel %s, creating files\n", u.release);
	C.wfd = make_file(C.wpath, sizeof(C.wpath), C.dir, "write.dat", C.write_size);
	/* Only for its group, which runs first and removes it (room for 6-8). */
	if (group_selected("read"))
		C.rfd = make_file(C.rpath, sizeof(C.rpath), C.read_dir, "read.dat",
				  C.read_size);
	C.uffd_file_errno = uffd_probe_file();

	run_groups();

	print_table(&u);
	printf("\n");
	print_json(&u, cpu, thp, far);

	close(C.wfd);
	unlink(C.wpath);
	read_teardown();
	return 0;
}
