"""Measure py3langid on headlines: English false alarms, other-language recall, speed, load time.

Usage: PYTHONPATH=. python3 bench/triage_langid.py [--shared ../shared/data]

Samples (labels come from the outlet, never from a language detector):
  en  news_engagement_2019 titles (12 English-language outlets) and fb_news_pages link names of
      English-language pages, plus the short English inputs of issue 14;
  fr  fb_news_pages link names of CNEWSofficiel (French TV news);
  tl  fb_news_pages link names of abscbnNEWS with three or more Tagalog function words;
  ml  fb_news_pages link names of mathrubhumidotcom in Malayalam script;
  ur  fb_news_pages link names of the two Pakistani pages in Arabic script;
  de/es/it/pt/nl  hand-written headlines (none of the shared data sets has them), issue 14's first.
Prints one table per configuration (all 140 languages vs. the restricted set of iscore/triage.py).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import re
import statistics
import time
from pathlib import Path

HAND = {
    "de": ["Erdbeben tötet mehr als 200 Menschen in Chile", "Regierung in Berlin beschließt neues Klimapaket",
           "Bundestag stimmt für höhere Mindestlöhne", "Zug entgleist in Bayern, mehrere Verletzte",
           "Zehn einfache Rezepte für den Sommer", "Kanzlerin trifft Präsidenten in Paris",
           "Hochwasser: Tausende müssen ihre Häuser verlassen", "Streik legt Flughafen Frankfurt lahm",
           "Polizei sucht nach vermisstem Mädchen", "Inflation steigt auf höchsten Stand seit Jahren",
           "Neue Studie warnt vor Folgen der Hitze", "Autobauer streicht tausende Stellen"],
    "es": ["Un terremoto mata a más de 200 personas en Chile", "El gobierno aprueba la reforma de las pensiones",
           "Diez recetas fáciles para el verano", "Incendio forestal obliga a evacuar a miles de vecinos",
           "El presidente viaja a Bruselas para negociar", "La inflación sube por tercer mes consecutivo",
           "Huelga de transporte paraliza la ciudad", "Detenido un hombre por el robo de obras de arte",
           "Las elecciones se celebrarán en noviembre", "Muere un turista en un accidente de tráfico",
           "El Real Madrid gana la liga", "Los precios de la vivienda siguen subiendo"],
    "fr": ["Un tremblement de terre tue plus de 200 personnes au Chili", "Le gouvernement présente son budget",
           "Dix recettes faciles pour l'été", "Grève nationale dans les transports jeudi",
           "Le président reçoit son homologue allemand", "Incendie dans un immeuble à Marseille",
           "Les prix de l'énergie continuent de grimper", "Un enfant disparu retrouvé sain et sauf"],
    "it": ["Terremoto uccide più di 200 persone in Cile", "Il governo approva la manovra economica",
           "Dieci ricette facili per l'estate", "Nuova coalizione giura al Quirinale",
           "Sciopero dei treni venerdì in tutta Italia", "Incendio distrugge un capannone a Milano",
           "La Juventus vince ancora", "Prezzi della benzina in aumento"],
    "pt": ["Terremoto mata mais de 200 pessoas no Chile", "Governo aprova reforma da previdência",
           "Dez receitas fáceis para o verão", "Incêndio atinge prédio no centro de São Paulo",
           "Presidente anuncia novas medidas econômicas", "Chuvas causam alagamentos na cidade"],
    "nl": ["Aardbeving doodt meer dan 200 mensen in Chili", "Kabinet presenteert nieuwe begroting",
           "Tien makkelijke recepten voor de zomer", "Trein ontspoord bij Utrecht, geen gewonden",
           "Minister stapt op na kritiek", "Prijzen van woningen blijven stijgen"],
}
SHORT_EN = ["Trump", "Earthquake", "Breaking", "BREAKING", "Donald Trump", "Joe Biden", "Brexit", "Oscars 2017",
            "Earthquake kills 200", "Fed raises rates", "Apple unveils iPhone", "Storm hits Texas",
            "Election results", "Super Bowl LI", "Weather forecast", "Ten easy recipes", "World Cup final"]
NON_ENGLISH_PAGES = {"CNEWSofficiel", "abscbnNEWS", "mathrubhumidotcom", "NewsPakistanPage", "pakistanPKaffairs",
                     "UN.News.Centre", "nepalitimes", "mattdrudge", "echinanews", "PeoplesDaily", "chinaplusnews",
                     "XinhuaNewsAgency", "RadioAustralia", "time", "thejapantimes", "eptimes"}
TL = re.compile(r"\b(ng|sa|mga|ang|si|na)\b", re.IGNORECASE)


def load(shared: Path, seed: int = 0) -> dict[str, list[str]]:
    """The labelled sample, per language code."""
    rng = random.Random(seed)
    by_page: dict[str, list[str]] = {}
    with gzip.open(shared / "fb_news_pages/fb_news_link_posts.csv.gz", "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_page.setdefault(row["page"], []).append(" ".join(row["link_name"].split()))
    with gzip.open(shared / "news_engagement_2019/news_articles.csv.gz", "rt", encoding="utf-8") as f:
        ne = [" ".join(r["title"].split()) for r in csv.DictReader(f) if r["title"] and not r["source_name"][:1].isdigit()]
    nonlatin = lambda t: sum(ord(c) > 0x24F for c in t) > 0.5 * len(t)  # noqa: E731
    english_pages = [t for p, ts in by_page.items() if p not in NON_ENGLISH_PAGES for t in ts if len(t.split()) >= 2]
    out = {
        "en": rng.sample(ne, 1000) + rng.sample(english_pages, 1000),
        "fr": rng.sample([t for t in by_page["CNEWSofficiel"] if len(t.split()) >= 4], 150),
        "tl": [t for t in by_page["abscbnNEWS"] if len(TL.findall(t)) >= 3],
        "ml": rng.sample([t for t in by_page["mathrubhumidotcom"] if nonlatin(t)], 100),
        "ur": sorted({t for p in ("NewsPakistanPage", "pakistanPKaffairs") for t in by_page[p] if nonlatin(t)}),
        **{f"{k}_hand": v for k, v in HAND.items()},
    }
    out["en_short"] = SHORT_EN + rng.sample([t for t in ne if len(t.split()) <= 5], 100)
    return out


def run(sample: dict[str, list[str]], langs: tuple[str, ...] | None, thresholds: list[float]) -> None:
    """Print false alarms, recall and accuracy for one language restriction."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from iscore.triage import MIN_WORDS_FOR_LANGUAGE, words

    t0 = time.perf_counter()
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if langs:
        ident.set_languages(list(langs))
    load_s = time.perf_counter() - t0
    name = "all 140" if not langs else f"{len(langs)} languages"
    print(f"\n== {name}: load {load_s * 1000:.0f} ms; share flagged not_english (language != en, "
          f">= {MIN_WORDS_FOR_LANGUAGE} words) at confidence >= " + ", ".join(map(str, thresholds)))
    times = []
    for lang, texts in sample.items():
        flagged = [0] * len(thresholds)
        correct = 0
        for t in texts:
            s = time.perf_counter()
            got, conf = ident.classify(t)
            times.append(time.perf_counter() - s)
            for i, th in enumerate(thresholds):
                flagged[i] += got != "en" and conf >= th and len(words(t)) >= MIN_WORDS_FOR_LANGUAGE
            correct += got == lang.split("_")[0]
        n = len(texts)
        rates = " ".join(f"{f / n:6.1%}" for f in flagged)
        print(f"  {lang:9s} n={n:5d}  flagged {rates}   language right {correct / n:6.1%}")
    ms = [x * 1000 for x in times]
    print(f"  speed: mean {statistics.mean(ms):.3f} ms, median {statistics.median(ms):.3f} ms, "
          f"p99 {sorted(ms)[int(0.99 * len(ms))]:.3f} ms per headline")


def main() -> None:
    """Run the measurement with and without the restricted language set."""
    from iscore.triage import LANGUAGES, NOT_ENGLISH_CONFIDENCE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = ap.parse_args()
    sample = load(args.shared)
    thresholds = sorted({0.5, 0.8, NOT_ENGLISH_CONFIDENCE, 0.99})
    run(sample, None, thresholds)
    run(sample, LANGUAGES, thresholds)
    triage_speed(sum(sample.values(), []))


def triage_speed(texts: list[str]) -> None:
    """Time the whole triage() per headline, model already loaded, and its first call in a fresh process."""
    import subprocess
    import sys

    from iscore.triage import load_language_model, triage

    load_language_model()
    t0 = time.perf_counter()
    for t in texts:
        triage(t, known=lambda w: True)
    per = (time.perf_counter() - t0) * 1000 / len(texts)
    cold = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); import iscore.triage as m; "
                           "a=time.perf_counter(); m.triage('Earthquake kills 200 in Chile'); "
                           "print(f'{(a-t)*1000:.0f} {(time.perf_counter()-a)*1000:.0f}')"],
                          capture_output=True, text=True, check=True).stdout.split()
    print(f"\ntriage(): {per:.3f} ms per headline over {len(texts)} headlines (model loaded); "
          f"fresh process: import {cold[0]} ms, first call (loads the model) {cold[1]} ms")


if __name__ == "__main__":
    main()
