"""Make the RixVox-layout fixture (tests/fixtures/rixvox) and the bundled sample's RixVox part
(sweaug/sample/rixvox) from espeak-ng Swedish speech, in KBLab/rixvox's published layout:

    data/<split>_metadata.parquet        (split in train, dev, test)
    data/<split>/<split>_<i>.tar.gz      (16 kHz wav members named by `filename`)

Run once (needs espeak-ng); the small outputs are committed so CI needs no synthesizer.
Planted quirks in the test fixture (see tests/fixtures/README.md): a member with no metadata
row, a metadata row whose audio is in no archive, an unsafe ('..') member.
"""
from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))
from fixtures.common import Member, espeak_wav, targz_bytes  # noqa: E402

SPEAKERS = {  # intressent_id -> (name, party, gender, birth year, district, espeak voice args)
    "0218878014918": ("Anna Andersson", "S", "female", 1968, "Stockholms län", ["-v", "sv+f2", "-p", "60"]),
    "0867215370223": ("Bertil Berg", "M", "male", 1955, "Skåne läns västra", ["-v", "sv", "-p", "40"]),
    "0583415092913": ("Cecilia Carlsson", "C", "female", 1979, "Västra Götalands län", ["-v", "sv+f4"]),
    "0412563890121": ("David Dahl", "V", "male", 1983, "Uppsala län", ["-v", "sv+m3"]),
    "0712345678901": ("Eva Ek", "L", "female", 1971, "Göteborgs kommun", ["-v", "sv+f3", "-p", "55"]),
}
SENTENCES = [  # short, so that the committed fixture stays small
    "Herr talman, jag yrkar bifall.",
    "Regeringen måste ta ansvar.",
    "Vi vill sänka skatten.",
    "Järnvägen behöver investeringar.",
    "Tack för en viktig fråga.",
    "Anslaget ökar med 2 miljarder.",
    "Vården behöver fler läkare.",
    "Betänkandet gäller försvaret.",
    "Reformen kommer för sent.",
    "Arbetslösheten har sjunkit.",
    "Kommunerna behöver stöd.",
    "Jag föreslår avslag.",
]


def speak(text: str, voice: list[str]) -> np.ndarray:
    x, sr = espeak_wav([*voice, "-s", "190"], text, dtype="float32")
    return soxr.resample(x, sr, 16000).astype(np.float32)


def wav_bytes(x: np.ndarray) -> bytes:
    b = io.BytesIO()
    sf.write(b, x, 16000, format="WAV", subtype="PCM_16")
    return b.getvalue()


def write_targz(path: Path, members: list[tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(targz_bytes([Member(name, data) for name, data in members]))


SCHEMA = pa.schema([
    ("dokid", pa.string()), ("anforande_nummer", pa.int64()), ("observation_nr", pa.int64()),
    ("text", pa.string()), ("debatedate", pa.date32()), ("speaker", pa.string()),
    ("party", pa.string()), ("gender", pa.string()), ("birth_year", pa.int64()),
    ("electoral_district", pa.string()), ("intressent_id", pa.string()),
    ("speaker_from_id", pa.bool_()), ("speaker_audio_meta", pa.string()), ("start", pa.float64()),
    ("end", pa.float64()), ("duration", pa.float64()), ("bleu_score", pa.float64()),
    ("filename", pa.string()), ("speaker_total_hours", pa.float64()),
])


def make(out: Path, plan: dict[str, list[list[tuple[str, int]]]], quirks: bool) -> None:
    """plan: split -> archives -> [(speaker id, sentence index)]."""
    for split, archives in plan.items():
        rows, dok = [], f"H{'ABC'[['train', 'dev', 'test'].index(split)]}01KU{len(split)}"
        for i, items in enumerate(archives):
            members = []
            for n, (spk, s) in enumerate(items):
                name, party, gender, born, district, voice = SPEAKERS[spk]
                x = speak(SENTENCES[s], voice)
                start = 10.0 * (len(rows) + 1)
                end = start + len(x) / 16000
                anf = 100 + i * 10 + n
                filename = f"{dok}/{2442210220028600000 + anf}_anf{anf}_{round(start)}_{round(end)}.wav"
                members.append((filename, wav_bytes(x)))
                rows.append({"dokid": dok, "anforande_nummer": anf, "observation_nr": n,
                             "text": SENTENCES[s], "debatedate": dt.date(2021, 3, 10 + i),
                             "speaker": name, "party": party, "gender": gender,
                             "birth_year": born, "electoral_district": district,
                             "intressent_id": spk, "speaker_from_id": True,
                             "speaker_audio_meta": name, "start": start, "end": end,
                             "duration": round(end - start, 3), "bleu_score": 0.9,
                             "filename": filename, "speaker_total_hours": 0.01})
            if quirks and split == "train" and i == 0:
                # a member with no metadata row, and an unsafe member
                members.append((f"{dok}/orphan_anf999_0_2.wav", wav_bytes(speak(SENTENCES[0], ["-v", "sv"]))))
                members.append(("../escape.wav", b"RIFF"))
            write_targz(out / "data" / split / f"{split}_{i}.tar.gz", members)
        if quirks and split == "train":
            ghost = dict(rows[-1], filename=f"{dok}/ghost_anf998_0_3.wav", anforande_nummer=998)
            rows.append(ghost)  # metadata row whose audio is in no archive
        (out / "data").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA),
                       out / "data" / f"{split}_metadata.parquet", compression="zstd")


def main() -> None:
    ids = list(SPEAKERS)
    fixture = {  # speaker-disjoint splits, as RixVox's
        "train": [[(ids[0], 0), (ids[1], 1), (ids[0], 2)], [(ids[1], 3), (ids[2], 4)]],
        "dev": [[(ids[3], 5), (ids[3], 6)]],
        "test": [[(ids[4], 7), (ids[4], 8)]],
    }
    make(ROOT / "tests" / "fixtures" / "rixvox", fixture, quirks=True)
    sample = {
        "train": [[(ids[0], 0), (ids[1], 1), (ids[2], 2), (ids[0], 3)], [(ids[1], 4), (ids[2], 9)]],
        "dev": [[(ids[3], 5), (ids[3], 6)]],
        "test": [[(ids[4], 7), (ids[4], 8), (ids[4], 10)]],
    }
    make(ROOT / "sweaug" / "sample" / "rixvox", sample, quirks=False)


if __name__ == "__main__":
    sys.exit(main())
