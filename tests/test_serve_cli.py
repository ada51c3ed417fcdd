"""`anygpt serve` as a user starts it: the printed address answers, bad arguments fail in one line."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def anygpt(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "anygpt.cli", *args], capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.parametrize("args,message", [
    (["--port", "99999"], "--port must be in"), (["--max-batch", "0"], "--max-batch must be at least 1"),
    (["--timeout", "0"], "--timeout must be positive"), (["--set", "text_num_beams=abc"], "text_num_beams"),
    (["--bundle", "nosuch"], "nosuch")])
def test_bad_arguments_fail_in_one_line(args, message):
    r = anygpt("serve", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_taken_port_fails_before_the_bundle_loads():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = anygpt("serve", "--bundle", "debug", "--port", str(taken.getsockname()[1]))
    assert r.returncode == 2 and "cannot listen" in r.stderr and "--port 0" in r.stderr


def test_the_printed_address_serves():
    proc = subprocess.Popen([sys.executable, "-m", "anygpt.cli", "serve", "--bundle", "debug", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("anygpt serve: debug on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split("/ ", 1)[0]
        deadline = time.monotonic() + 30
        while True:
            try:
                health = json.load(urllib.request.urlopen(url + "/health", timeout=5))
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert health["model"] == "debug"
        page = urllib.request.urlopen(url + "/").read().decode()
        assert "<title>anygpt</title>" in page and "/page/app.js" in page
    finally:
        proc.terminate()
        proc.wait(30)
