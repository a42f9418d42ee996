"""The signaling benchmark's pages (bench/signaling.py) still speak the call page's protocol:
a short call and a rejoin through them against the app, so `make bench` does not find out."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.helpers import DOCTOR, PATIENT, WEBRTC, FrozenClock, MakeClient, path_of, webrtc_call

BENCH = Path(__file__).resolve().parent.parent / "bench" / "signaling.py"


def bench_pages() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_signaling", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)  # it puts bench/ on the path, for its `run`
    finally:
        sys.path[:] = path  # bench/profile.py must not shadow the standard library's
    return module


async def test_the_benchmarks_pages_call_and_rejoin(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    bench = bench_pages()
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    doctor, patient = (str(client.make_url(path_of(links[u]))) for u in ("doctor-1", "patient-1"))

    joined = await bench.call(client.session, doctor, patient)  # join, offer, answer
    rejoined = await bench.rejoin(client.session, 0)  # leave, join again

    assert 0 < joined < 5
    assert 0 < rejoined < 5
    [(doctor_page, patient_page, link)] = bench.CALLS
    assert link == patient
    await patient_page.ws.close()
    await doctor_page.ws.close()
