"""Videos as practitioners have them: damaged frames skipped, counted and
named by number (exit status 0 unless asked), a file with no frame an
error, the rates right, no image line for videos alone; memory that does
not grow with a video's length."""

import json
import tracemalloc

import numpy as np
import pytest

from conftest import python
from jaxfer.detect import Face
from jaxfer.detect import video

cv2 = pytest.importorskip("cv2")


def _clip(path, n, side=96):
  """`n` MJPG frames, frame k filled with grey level 2k mod 250."""
  w = cv2.VideoWriter(
    str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (side, side)
  )
  for k in range(n):
    w.write(np.full((side, side, 3), (2 * k) % 250, np.uint8))
  w.release()
  return path


def _damage(path, frames):
  """Wipes the JPEG start marker and entropy data of the given frames."""
  data = bytearray(path.read_bytes())
  soi = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xd8"]
  for k in frames:
    s, e = soi[k], soi[k + 1] - 10  # inside the frame's own bytes
    data[s : s + 2] = b"\x00\x00"
    data[s + 100 : e] = bytes(e - s - 100)
  path.write_bytes(bytes(data))
  return path


def test_damaged_frames_are_skipped_and_named_by_number(tmp_path):
  path = _damage(_clip(tmp_path / "d.avi", 120), [50, 51])
  damaged = video.Damaged()
  got = [(i, int(f[0, 0, 0])) for i, _, f in video.frames(path, 1, damaged)]
  assert len(got) == 118 and damaged.ranges == [[50, 51]]
  # the numbers are the file's own: frame k holds grey 2k (JPEG: +-2)
  assert all(abs(v - 2 * i) <= 2 for i, v in got)
  assert [i for i, _ in got][48:51] == [48, 49, 52]
  with pytest.raises(video.DataError, match=r"d\.avi: damaged.*50-51"):
    list(video.frames(path))  # no record to keep them in: an error
  empty = tmp_path / "empty.avi"
  empty.write_bytes(b"RIFF0000AVI LIST")
  with pytest.raises(video.DataError, match="empty.avi"):
    list(video.frames(empty, 1, video.Damaged()))


@pytest.mark.slow
def test_cli_on_a_damaged_video_exits_0_and_names_the_frames(tmp_path):
  path = _damage(_clip(tmp_path / "d.avi", 120), [50, 51])
  p = python("-m", "jaxfer.predict", "--json", path, cwd=tmp_path)
  assert p.returncode == 0, p.stderr[-3000:]
  (rec,) = [json.loads(x) for x in p.stdout.splitlines() if "damaged" in x]
  assert rec["damaged"] == 2 and rec["damaged_frames"] == [[50, 51]]
  assert rec["frames_read"] == 118
  assert str(path) in p.stderr and "frames 50-51" in p.stderr
  assert p.stderr.count(str(path)) == 1  # named once
  (last,) = p.stderr.strip().splitlines()[-1:]
  assert "images" not in last  # videos alone: no image part
  assert "1 videos, 118 frames, 0 face rows, 2 damaged frames skipped" in last
  rate = float(last.split("; ")[-1].split(" frames/s")[0])
  assert 0.5 < rate < 5000, last
  p = python("-m", "jaxfer.predict", "--fail_on_damage", path, cwd=tmp_path)
  assert p.returncode == 1


class _OneFace:
  """A finder that finds one face in the frame's centre."""

  def __call__(self, frame):
    return [Face((16, 16, 32, 32), None, frame[16:48, 16:48])]


class _Model:
  class_names = ("a", "b", "c")

  def probabilities(self, crops, batch_size=8):
    m = np.array([c.mean() for c in crops])[:, None]
    p = np.concatenate([m, 255 - m, np.full_like(m, 100)], 1) + 1
    return p / p.sum(1, keepdims=True)


def _peak(path, tmp_path) -> tuple[int, int]:
  rows = []
  tracemalloc.start()
  v = video.run_video(
    str(path),
    _Model(),
    _OneFace(),
    out_dir=str(tmp_path),
    emit=lambda r: rows.append(1),
  )
  peak = tracemalloc.get_traced_memory()[1]
  tracemalloc.stop()
  assert v["rows"] == v["frames"] == len(rows)
  return peak, v["frames"]


def test_memory_does_not_grow_with_the_videos_length(tmp_path):
  """Ten times the frames, the same peak: no row, frame or track point
  is kept per frame (the old rows alone were ~1 KB a frame)."""
  short, n = _peak(_clip(tmp_path / "short.avi", 400, side=64), tmp_path)
  long_, m = _peak(_clip(tmp_path / "long.avi", 4000, side=64), tmp_path)
  assert (n, m) == (400, 4000)
  assert long_ < short + 1_000_000, (short, long_)
