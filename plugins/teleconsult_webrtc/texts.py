"""What the call page says, in each language it speaks (English and Italian).

The page gets one language's texts from its info; the server uses them for the
refusal pages. Every language has the same keys (a test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_LANGUAGE = "en"

TEXTS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title": "Video consultation",
        "loading": "Loading…",
        "join": "Join",
        "leave": "Leave",
        "end_for_all": "End call for everyone",
        "end_confirm": "Click again to end the call for everyone",
        "camera_off": "Turn camera off",
        "camera_on": "Turn camera on",
        "mic_off": "Mute microphone",
        "mic_on": "Unmute microphone",
        "waiting": "Waiting for the other participant…",
        "connecting": "Connecting…",
        "reconnecting": "Reconnecting…",
        "you": "You",
        "participants": "Participants",
        "scheduled": "Scheduled",
        "ended": "The call has ended.",
        "left": "You left the call.",
        "full": "This call already has the maximum number of participants.",
        "replaced": "This call was opened in another window or device.",
        "connection_lost": "Connection lost.",
        "media_error": "Camera or microphone not available. You can still join.",
        "invalid": "This call link is not valid.",
        "not_open": "This call is not open yet. Open the link again closer to its start.",
        "expired": "This call link has expired.",
        "gone": "This call has ended or was cancelled.",
    },
    "it": {
        "title": "Videoconsulto",
        "loading": "Caricamento…",
        "join": "Entra",
        "leave": "Esci",
        "end_for_all": "Termina la chiamata per tutti",
        "end_confirm": "Fai clic di nuovo per terminare la chiamata per tutti",
        "camera_off": "Disattiva videocamera",
        "camera_on": "Attiva videocamera",
        "mic_off": "Disattiva microfono",
        "mic_on": "Attiva microfono",
        "waiting": "In attesa dell'altro partecipante…",
        "connecting": "Connessione in corso…",
        "reconnecting": "Riconnessione in corso…",
        "you": "Tu",
        "participants": "Partecipanti",
        "scheduled": "Programmata",
        "ended": "La chiamata è terminata.",
        "left": "Hai lasciato la chiamata.",
        "full": "La chiamata ha già il numero massimo di partecipanti.",
        "replaced": "La chiamata è stata aperta in un'altra finestra o dispositivo.",
        "connection_lost": "Connessione persa.",
        "media_error": "Videocamera o microfono non disponibili. Puoi comunque entrare.",
        "invalid": "Il link della chiamata non è valido.",
        "not_open": "La chiamata non è ancora aperta. Riapri il link più vicino all'inizio.",
        "expired": "Il link della chiamata è scaduto.",
        "gone": "La chiamata è terminata o è stata annullata.",
    },
}


def supported(language: str | None) -> str | None:
    """The supported language a tag names (`it-IT` is `it`), or None."""
    primary = (language or "").strip().lower().split("-")[0]
    return primary if primary in TEXTS else None


def from_header(accept_language: str | None) -> str:
    """The best supported language of an Accept-Language header (q-values honoured): for
    links that name no participant, whose language is therefore unknown."""
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for item in (accept_language or "").split(",")[:20]:
        tag, _, parameters = item.strip().partition(";")
        language = supported(tag)
        quality = 1.0
        if parameters.strip().startswith("q="):
            try:
                quality = float(parameters.strip()[2:])
            except ValueError:
                continue
        if language is not None and quality > best_q:
            best, best_q = language, quality
    return best
