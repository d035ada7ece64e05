"""Whisper's languages: codes as its tokenizer spells them (``<|en|>``), names as people say them.

A model's own list is the ``lang_to_id`` of its generation_config.json (an English-only model has none); this
table only names the codes, in Whisper's order (the order of its language tokens).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from demos.core.errors import UserError

WHISPER_LANGUAGES: dict[str, str] = {
    "en": "English", "zh": "Chinese", "de": "German", "es": "Spanish", "ru": "Russian", "ko": "Korean",
    "fr": "French", "ja": "Japanese", "pt": "Portuguese", "tr": "Turkish", "pl": "Polish", "ca": "Catalan",
    "nl": "Dutch", "ar": "Arabic", "sv": "Swedish", "it": "Italian", "id": "Indonesian", "hi": "Hindi",
    "fi": "Finnish", "vi": "Vietnamese", "he": "Hebrew", "uk": "Ukrainian", "el": "Greek", "ms": "Malay",
    "cs": "Czech", "ro": "Romanian", "da": "Danish", "hu": "Hungarian", "ta": "Tamil", "no": "Norwegian",
    "th": "Thai", "ur": "Urdu", "hr": "Croatian", "bg": "Bulgarian", "lt": "Lithuanian", "la": "Latin",
    "mi": "Maori", "ml": "Malayalam", "cy": "Welsh", "sk": "Slovak", "te": "Telugu", "fa": "Persian",
    "lv": "Latvian", "bn": "Bengali", "sr": "Serbian", "az": "Azerbaijani", "sl": "Slovenian", "kn": "Kannada",
    "et": "Estonian", "mk": "Macedonian", "br": "Breton", "eu": "Basque", "is": "Icelandic", "hy": "Armenian",
    "ne": "Nepali", "mn": "Mongolian", "bs": "Bosnian", "kk": "Kazakh", "sq": "Albanian", "sw": "Swahili",
    "gl": "Galician", "mr": "Marathi", "pa": "Punjabi", "si": "Sinhala", "km": "Khmer", "sn": "Shona",
    "yo": "Yoruba", "so": "Somali", "af": "Afrikaans", "oc": "Occitan", "ka": "Georgian", "be": "Belarusian",
    "tg": "Tajik", "sd": "Sindhi", "gu": "Gujarati", "am": "Amharic", "yi": "Yiddish", "lo": "Lao", "uz": "Uzbek",
    "fo": "Faroese", "ht": "Haitian Creole", "ps": "Pashto", "tk": "Turkmen", "nn": "Nynorsk", "mt": "Maltese",
    "sa": "Sanskrit", "lb": "Luxembourgish", "my": "Myanmar", "bo": "Tibetan", "tl": "Tagalog", "mg": "Malagasy",
    "as": "Assamese", "tt": "Tatar", "haw": "Hawaiian", "ln": "Lingala", "ha": "Hausa", "ba": "Bashkir",
    "jw": "Javanese", "su": "Sundanese", "yue": "Cantonese",
}
AUTO = "auto"


def code_of(token: str) -> str:
    """``<|en|>`` -> ``en``."""
    return token.strip().removeprefix("<|").removesuffix("|>")


def model_languages(lang_to_id: dict[str, int] | None) -> list[str]:
    """Codes a model knows, in Whisper's order (unknown codes last, sorted)."""
    codes = {code_of(token) for token in (lang_to_id or {})}
    order = {code: i for i, code in enumerate(WHISPER_LANGUAGES)}
    return sorted(codes, key=lambda code: (order.get(code, len(order)), code))


def folder_languages(folder: Path | None) -> list[str] | None:
    """Codes from a model folder's generation_config.json; None when the folder or file is not there yet."""
    if folder is None or not (folder / "generation_config.json").is_file():
        return None
    try:
        config: dict[str, Any] = json.loads((folder / "generation_config.json").read_text())
    except (OSError, ValueError):
        return None
    return model_languages(config.get("lang_to_id"))


def label(code: str) -> str:
    name = WHISPER_LANGUAGES.get(code)
    return f"{name} ({code})" if name else code


def choices(codes: list[str] | None) -> list[tuple[str, str]]:
    """Dropdown choices: auto-detect first, then each language by name."""
    return [("Auto-detect", AUTO)] + [(label(code), code) for code in (codes or [])]


def resolve(value: str | None, codes: list[str]) -> str | None:
    """The code to ask the model for, or None for auto-detection.

    Accepts ``""``/``auto``, a code (``de``), a token (``<|de|>``) or a name (``German``, any case). A language
    the model does not know is a ``ValueError`` that lists the ones it does.
    """
    text = (value or "").strip()
    if not text or text.lower() in (AUTO, "auto-detect", "detect"):
        return None
    wanted = code_of(text).lower()
    by_name = {name.lower(): code for code, name in WHISPER_LANGUAGES.items()}
    code = wanted if wanted in codes else by_name.get(wanted, wanted)
    if code in codes:
        return code
    if not codes:
        raise UserError(f"this model is English-only and cannot be told a language; use language 'auto' "
                        f"(got {value!r})", param="language")
    known = ", ".join(codes)
    raise UserError(f"language {value!r} is not one this model knows; use 'auto' or one of: {known}", param="language")
