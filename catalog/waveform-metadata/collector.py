"""Extract per-stream metadata from an archive of miniSEED waveform files.

For every file under the input folder, ObsPy reads the records; for every stream (network,
station, location, channel) we report the time span, sampling rate, sample count, gaps and
overlaps, and basic sample statistics. Files that are not readable miniSEED are reported in
the output, one line each, and do not stop the run.

The output is deterministic JSON (sorted keys, fixed float formatting, no timestamps of the
run itself), so that rerunning the same image on the same archive reproduces it byte for byte.
"""

import json
import math
import os
import sys
import warnings


def number(value):
    """Floats as fixed-precision strings-free numbers that serialise the same everywhere."""
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    return float(f"{value:.9g}")


def describe(stream_id, traces, gaps):
    import numpy as np

    traces = sorted(traces, key=lambda t: (t.stats.starttime, t.stats.endtime))
    data = np.concatenate([np.asarray(t.data, dtype=np.float64) for t in traces])
    network, station, location, channel = stream_id.split(".")
    own = [g for g in gaps if ".".join(g[:4]) == stream_id]
    return {
        "network": network,
        "station": station,
        "location": location,
        "channel": channel,
        "start": str(traces[0].stats.starttime),
        "end": str(max(t.stats.endtime for t in traces)),
        "sampling_rate": number(traces[0].stats.sampling_rate),
        "samples": int(sum(t.stats.npts for t in traces)),
        "segments": len(traces),
        "gaps": sum(1 for g in own if g[6] > 0),
        "overlaps": sum(1 for g in own if g[6] < 0),
        "statistics": {
            "min": number(data.min()) if data.size else None,
            "max": number(data.max()) if data.size else None,
            "mean": number(data.mean()) if data.size else None,
            "std": number(data.std()) if data.size else None,
        },
    }


def collect(folder):
    from obspy import read

    files, errors = [], []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    stream = read(path, format="MSEED")
            except Exception as exc:  # one bad file must not stop the archive
                errors.append({"file": rel, "error": f"{type(exc).__name__}: {exc}"[:300]})
                continue
            gaps = stream.get_gaps()
            by_id = {}
            for trace in stream:
                by_id.setdefault(trace.id, []).append(trace)
            files.append({
                "file": rel,
                "streams": [describe(sid, by_id[sid], gaps) for sid in sorted(by_id)],
            })
    return files, errors


def main(argv):
    src = argv[1] if len(argv) > 1 else "/data/input"
    dst = argv[2] if len(argv) > 2 else "/data/output"
    files, errors = collect(src)
    report = {
        "archive": {"files": len(files) + len(errors), "readable": len(files),
                    "unreadable": len(errors)},
        "files": files,
        "errors": errors,
    }
    with open(os.path.join(dst, "metadata.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, sort_keys=True)
        fh.write("\n")
    print(f"{len(files)} miniSEED files described, {len(errors)} unreadable")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
