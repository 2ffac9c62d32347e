"""`tether run --image` of an encrypted 50 MB image against the same image unencrypted, and
against `skopeo copy --decryption-key` decrypting it to a directory (what a pull does before
a container engine can run it), in the same run, interleaved: medians and ratios.

Usage: bench_image.py TETHER PROBE [RUNS] [MB]"""
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

tether, probe = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
mb = int(sys.argv[4]) if len(sys.argv) > 4 else 50
skopeo = shutil.which("skopeo")
if skopeo is None or shutil.which("openssl") is None or os.geteuid() != 0:
    print("image launch: skipped (needs root, skopeo and openssl)")
    sys.exit(0)

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "oci_image", os.path.join(here, "..", "..", "contrib", "oci-image.py"))
oci_image = importlib.util.module_from_spec(spec)
spec.loader.exec_module(oci_image)

d = tempfile.mkdtemp()
try:
    rootfs = os.path.join(d, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    os.makedirs(os.path.join(rootfs, "data"))
    shutil.copy(probe, os.path.join(rootfs, "bin", "probe"))
    with open(os.path.join(rootfs, "data", "big"), "wb") as f:
        f.write(os.urandom(mb << 20))  # incompressible: the layer is as large as its content
    plain = os.path.join(d, "plain")
    oci_image.layout(rootfs, plain, "app", ["/bin/probe", "exists", "/data/big"])
    shutil.rmtree(rootfs)
    keys = os.path.join(d, "keys")
    os.mkdir(keys, 0o700)
    priv, pub = os.path.join(keys, "bench.pem"), os.path.join(d, "bench.pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", priv], check=True, capture_output=True)
    os.chmod(priv, 0o600)
    subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    enc = os.path.join(d, "enc")
    subprocess.run([skopeo, "--insecure-policy", "copy", "-q", "--encryption-key", "jwe:" + pub,
                    "oci:%s:app" % plain, "oci:%s:app" % enc], check=True)
    policy = os.path.join(d, "policy.lua")
    with open(policy, "w") as f:
        f.write('function decide(input) return {allow = true, key = {id = "bench"}} end\n')
    conf = os.path.join(d, "tether.json")
    audit = "/dev/shm/tether-bench-image.%d" % os.getpid()
    with open(conf, "w") as f:
        json.dump({"keystore": keys, "audit": {"path": audit}}, f)
    env = dict(os.environ, TETHER_CONFIG=conf)
    out = os.path.join(d, "out")

    def tether_run(layout):
        subprocess.run([tether, "run", "--policy", policy, "--image", "oci:%s:app" % layout],
                       check=True, env=env, stdout=subprocess.DEVNULL)

    def skopeo_decrypt():
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([skopeo, "--insecure-policy", "copy", "-q", "--decryption-key", priv,
                        "oci:%s:app" % enc, "dir:" + out], check=True)

    cases = [("tether run --image, encrypted", lambda: tether_run(enc)),
             ("tether run --image, plain", lambda: tether_run(plain)),
             ("skopeo copy --decryption-key to dir:", skopeo_decrypt)]
    t = {name: [] for name, _ in cases}
    for i in range(runs + 1):
        for name, fn in cases:
            t0 = time.monotonic()
            fn()
            if i >= 1:  # the first round warms the page cache
                t[name].append((time.monotonic() - t0) * 1000)
    med = {name: statistics.median(v) for name, v in t.items()}
    e, p, s = (med[name] for name, _ in cases)
    print("image launch, %d MB, %d runs each: encrypted %.0f ms, plain %.0f ms, skopeo %.0f ms"
          % (mb, runs, e, p, s))
    print("  encrypted vs plain: ratio %.2f" % (e / p))
    print("  encrypted vs skopeo copy --decryption-key %s oci:ENC:app dir:OUT: ratio %.2f"
          % (os.path.basename(priv), e / s))
finally:
    shutil.rmtree(d)
    if os.path.exists("/dev/shm/tether-bench-image.%d" % os.getpid()):
        os.unlink("/dev/shm/tether-bench-image.%d" % os.getpid())
