"""What an agent's tool can find of its account's credential: a Python program the scripted
agent runs through the Bash tool inside an agent pod (`python3 -c PROBE`, the pattern as its
argument). It looks everywhere a tool of the agent's user can: its own environment, every
/proc/<pid>/environ and cmdline, every /proc/<pid>/fd/* it may open (regular files, and
pipes without blocking), the well-known credential paths, and every regular file under / up
to a size. It prints each distinct match of the pattern, then a summary line; the pattern
matches the test's tokens by shape, so the probe's own text never contains a token."""

PROBE = r"""
import os, re, stat, sys
pattern = re.compile(sys.argv[1].encode())
found, places = set(), {"env": 0, "proc": 0, "fd": 0, "files": 0}
def look(data, where):
    places[where] += 1
    found.update(pattern.findall(data))
look("\n".join(f"{k}={v}" for k, v in os.environ.items()).encode(), "env")
pids = [p for p in os.listdir("/proc") if p.isdigit()]
for pid in pids:
    for name in ("environ", "cmdline"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                look(f.read(), "proc")
        except OSError:
            pass
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    for fd in fds:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            mode = os.stat(path).st_mode
            if stat.S_ISREG(mode):
                with open(path, "rb") as f:
                    look(f.read(1 << 20), "fd")
            elif stat.S_ISFIFO(mode) and int(fd) > 2:
                handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    look(os.read(handle, 1 << 16), "fd")
                finally:
                    os.close(handle)
        except (OSError, ValueError):
            pass
for path in ("/var/run/headroom/credential/value", "/var/run/headroom/credential-source/value"):
    try:
        with open(path, "rb") as f:
            look(f.read(), "files")
    except OSError:
        pass
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys", "/dev")]
    for name in files:
        path = os.path.join(root, name)
        try:
            if os.path.islink(path) or os.path.getsize(path) > (8 << 20):
                continue
            with open(path, "rb") as f:
                look(f.read(), "files")
        except OSError:
            pass
for match in sorted(found):
    print("found", match.decode())
print("searched", " ".join(f"{k}={v}" for k, v in places.items()))
"""
