"""The page under load: 20 requests at once, 5 rounds, through gradio's HTTP API (upload, queue, download).

Every request sends the same voice, so every answer is the same face and the same nearest test faces: the case in
which the page used to rewrite one image file while another request was downloading it (2 of 100 answers arrived
truncated, "Too little data for declared Content-Length"). Every image must now arrive whole and decode as a PNG,
the server's memory must not grow from round 1 to round 5 by more than 50 MB, and the answers' files on disk stay
bounded.
"""
from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from pipeline.serve.app import KEEP_ANSWERS
from pipeline.testing.app import IMAGE_SIZE, file_data, running_app, write_wav

CONCURRENT = 20
ROUNDS = 5
K = 3
#: seconds any one HTTP exchange may take (20 queued requests at the page's concurrency of 2 on a busy CPU)
TIMEOUT_S = 120
MAX_RSS_GROWTH_MB = 50


def _png(body: bytes) -> Image.Image:
    assert body.startswith(b"\x89PNG\r\n\x1a\n"), body[:16]
    Image.open(io.BytesIO(body)).verify()  # every chunk's CRC, to the IEND chunk: a truncated file fails here
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


@pytest.mark.slow
def test_twenty_requests_at_once_five_times_give_whole_pngs_and_bounded_memory(data, tmp_path):
    voice = write_wav(tmp_path / "voice.wav", 2.0)
    with running_app(data, tmp_path / "server", "--k", str(K)) as app:

        def ask(_: int) -> int:
            uploaded = app.upload(voice, timeout=TIMEOUT_S)
            face, message, nearest, _, _ = app.call("face", [None, file_data(uploaded), None, "neutral_fc", "arspm"],
                                                    timeout=TIMEOUT_S)
            assert face is not None, message
            assert _png(app.download(face, timeout=TIMEOUT_S)).size == (IMAGE_SIZE, IMAGE_SIZE)
            assert len(nearest) == K
            for item in nearest:
                assert _png(app.download(item["image"], timeout=TIMEOUT_S)).size == (IMAGE_SIZE, IMAGE_SIZE)
            return 1 + len(nearest)

        rss, seconds, failures, images = [], [], [], 0
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
            for _ in range(ROUNDS):
                begun = time.perf_counter()
                for future in [pool.submit(ask, i) for i in range(CONCURRENT)]:
                    try:
                        images += future.result(timeout=4 * TIMEOUT_S)
                    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                        failures.append(f"{type(exc).__name__}: {exc}")
                seconds.append(time.perf_counter() - begun)
                rss.append(app.rss_mb())
        wall = time.perf_counter() - started
        kept = app.answer_files()
        print(f"\npage load: {ROUNDS} rounds x {CONCURRENT} requests in {wall:.1f} s (rounds "
              f"{', '.join(f'{s:.1f}' for s in seconds)} s); {images} images downloaded; {len(failures)} failed; "
              f"server RSS {', '.join(f'{r:.0f}' for r in rss)} MB (round 1 to {ROUNDS}: {rss[-1] - rss[0]:+.1f} MB); "
              f"{len(kept)} answer files kept")
    assert failures == [], failures[:3]
    assert images == ROUNDS * CONCURRENT * (1 + K)
    assert rss[-1] - rss[0] <= MAX_RSS_GROWTH_MB, rss
    assert len(kept) <= KEEP_ANSWERS * (1 + K)  # the answers' own files stay bounded
