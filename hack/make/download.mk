# `exportjob download` (docs/download.md): its benchmark. Included by the Makefile.

bench-download: setup system-deps | $(DEVCLUSTER_BINS) ## Download through the Pod proxy, 10 MB and 1 GB: client peak RSS and MB/s vs kubectl get --raw.
	$(PY) bench/download.py $(BENCH_DOWNLOAD_ARGS)

.PHONY: bench-download
