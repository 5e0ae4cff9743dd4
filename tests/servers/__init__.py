"""Real servers the tests start on loopback addresses, and what stopping them takes."""

import subprocess


def stop_process(proc: "subprocess.Popen[bytes]") -> None:
    """Stop a server process: asked, then killed, within ten seconds; the pipes the test opened
    to it are closed."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
