"""German and English for every text a supporter sees: pages, form messages and mails.

One flat catalog keyed by message id; `t(key, lang, **values)` formats with str.format. A test
checks that both languages have exactly the same keys and placeholders.
"""

from __future__ import annotations

from supporters.models import LANGUAGES

DEFAULT_LANGUAGE = "en"

CATALOG: dict[str, dict[str, str]] = {
    "en": {
        "site.title": "Supporters",
        # every page: who is asking
        "site.privacy": "Privacy policy",
        "site.imprint": "Imprint",
        "site.logo": "Logo of {org}",
        "home.title": "Supporters of {org}",
        "home.body": "Customers, fans, former employees, suppliers and partners: join our supporters and "
                     "hear first when your voice counts. You choose what you hear about and how often, "
                     "and you can leave with one click.",
        "home.join": "Join now",
        "joined.address": "We sent it to: {email}",
        "joined.resend.title": "No email?",
        "joined.resend.body": "Check your spam folder. Or have the email sent again (at most a few times "
                              "per hour):",
        "joined.resend.button": "Send the email again",
        "unsub.instead.title": "Rather hear from us less?",
        "unsub.instead.fewer": "Fewer emails: choose how often",
        "unsub.instead.pause": "Pause for a while",
        "lang.de": "Deutsch",
        "lang.en": "English",
        "lang.switch": "Language",
        # join form
        "join.title": "Join our supporters",
        "join.intro": "Customers, fans, former employees, suppliers and partners: when it matters, we ask "
                      "you to share, review or vote. Rarely, honestly, never for a reward, and you can leave "
                      "with one click.",
        "join.email": "Email address",
        "join.name": "Name (optional)",
        "join.kind": "How are you connected to us?",
        "kind.fan": "Customer or fan",
        "kind.former_employee": "Former employee",
        "kind.supplier": "Supplier",
        "kind.partner": "Partner",
        "kind.other": "Other",
        "join.insider_note": "Former employees, suppliers and partners: if we ever ask you for a review, "
                             "please say how you are connected to us.",
        "join.language": "Language of our emails",
        "join.interests": "What interests you? (optional)",
        "join.consent_legend": "Your consent",
        "join.submit": "Join",
        "join.privacy": "We store your email address, your name if you give it, your choices and a record "
                        "of your consent, nothing else. You receive an email to confirm; without that "
                        "confirmation we will not write to you.",
        "join.honeypot": "Leave this field empty",
        "join.referred": "A friend invited you. Welcome!",
        "joined.title": "Almost there: please check your inbox",
        "joined.body": "We have sent an email to the address you entered. Open the link in it to confirm. "
                       "If nothing arrives within a few minutes, please look in your spam folder.",
        # form messages
        "error.summary": "Please check the marked fields.",
        "error.email.required": "Please enter your email address.",
        "error.email.invalid": "This does not look like a valid email address.",
        "error.email.too_long": "The email address is too long (at most {max} characters).",
        "error.name.too_long": "The name is too long (at most {max} characters).",
        "error.name.invalid": "The name contains characters we cannot accept.",
        "error.kind.required": "Please choose how you are connected to us.",
        "error.kind.invalid": "Please choose one of the listed options.",
        "error.language.invalid": "Please choose German or English.",
        "error.interests.invalid": "Please choose only from the listed interests.",
        "error.consent.required": "Please tick the box to agree; without your consent we cannot write to you.",
        "error.honeypot": "This submission looked automated and was not accepted. Please try again.",
        "error.csrf": "The form had expired. Please check your entries and submit it again.",
        "error.asks.invalid": "Please choose one of the listed options.",
        "error.pause.invalid": "Please enter a date as YYYY-MM-DD.",
        "error.pause.past": "Please choose a date in the future.",
        "error.pause.too_far": "Please choose a date within the next year.",
        # confirm
        "confirm.title": "Confirm your support",
        "confirm.body": "Please confirm that you want to join. This is what you agree to:",
        "confirm.button": "Yes, I confirm",
        "confirmed.title": "Welcome! You are now a supporter.",
        "confirmed.body": "Thank you. Here is your personal link: when friends join through it, we know "
                          "that you brought them.",
        "confirmed.copy": "Copy link",
        "confirmed.share": "Share",
        "confirmed.share_text": "I support them. Join me:",
        "confirmed.preferences": "Choose what you hear about and how often in your preferences.",
        "confirm.withdrawn.title": "This link is no longer valid",
        "confirm.withdrawn.body": "You withdrew your consent after we sent this link, so it cannot confirm "
                                  "anything anymore. If you want to come back, please join again.",
        "link.invalid.title": "This link is not valid",
        "link.invalid.body": "It may be incomplete or have been changed. Please copy the whole link from the "
                             "email. Every email from us also has a working unsubscribe link at the end.",
        "link.expired.title": "This link has expired",
        "link.expired.body": "Confirmation links are valid for {days} days. We can send you a new one.",
        "link.new": "Send me a new link",
        "link.resent.title": "A new link is on its way",
        "link.resent.body": "If the address belongs to a supporter who still has to confirm, we have sent "
                            "a new confirmation link to it.",
        "join.again": "Join again",
        # preferences
        "prefs.title": "Your preferences",
        "prefs.intro": "Choose what you hear about and how often. Changes apply at once.",
        "prefs.pending": "You have not confirmed your email address yet: please open the link in the "
                         "confirmation email first.",
        "prefs.asks": "How often may we ask you at most?",
        "prefs.asks.default": "As usual (at most {n} times a month)",
        "prefs.asks.n": "At most {n} times a month",
        "prefs.asks.one": "At most once a month",
        "prefs.pause": "Pause until (optional)",
        "prefs.pause_hint": "We will not ask you anything before this date. Leave empty for no pause.",
        "prefs.save": "Save preferences",
        "prefs.saved": "Your preferences are saved.",
        "prefs.referral": "Your personal link to invite friends:",
        "prefs.dialog": "Your idea or concern: tell us, and back what others raised",
        "prefs.leave.title": "Leave",
        "prefs.leave.body": "Withdraw your consent and leave the supporter list. We will not write to you again.",
        "prefs.leave.button": "Leave and withdraw my consent",
        # unsubscribe
        "unsub.title": "Unsubscribe",
        "unsub.body": "One click and you will not receive any more emails from us. You can join again later.",
        "unsub.button": "Unsubscribe",
        "testlink.title": "A link from a test mail",
        "testlink.body": "This link came in a test mail. It opens the real page, but it changes nothing: "
                         "nobody was unsubscribed, no setting was saved and no action was recorded.",
        "unsubscribed.title": "You have left",
        "unsubscribed.body": "We have recorded the withdrawal of your consent and will not write to you "
                             "anymore. Thank you for your support so far. Changed your mind? You can join "
                             "again at any time.",
        # limits
        "limit.title": "Too many attempts",
        "limit.body": "Please wait a moment and try again.",
        # mails
        "mail.greeting": "Hello {name},",
        "mail.greeting_anon": "Hello,",
        "mail.confirm.subject": "Please confirm your support",
        "mail.confirm.body": "please confirm that you want to join our supporters by opening this link:",
        "mail.confirm.button": "Confirm my support",
        "mail.confirm.expiry": "The link is valid for {days} days. If you did not sign up, simply ignore "
                               "this email: without your confirmation nothing happens.",
        "mail.already.subject": "You are already one of our supporters",
        "mail.already.body": "someone, probably you, just tried to join with this address. You are already "
                             "a supporter, so nothing has changed.",
        "mail.already.preferences": "Change what you hear about and how often:",
        "mail.already.referral": "Your personal link to invite friends:",
        "mail.why.signup": "You receive this email because this address was entered on the supporter form of "
                           "{org}. Without your confirmation we will not write to you again.",
        "mail.why.supporter": "You receive this email because you are a supporter of {org} and this address "
                              "was just entered on our supporter form.",
        "mail.why.campaign": "You receive this email because on {date} you agreed to hear from {org} as a "
                             "supporter.",
        "mail.footer.preferences": "Preferences",
        "mail.footer.dialog": "Your idea or concern",
        "mail.footer.unsubscribe": "Unsubscribe",
        "mail.footer.privacy": "Privacy policy",
        "mail.signature": "Thank you!",
    },
    "de": {
        "site.title": "Unterstützer:innen",
        # every page: who is asking
        "site.privacy": "Datenschutz",
        "site.imprint": "Impressum",
        "site.logo": "Logo von {org}",
        "home.title": "Unterstützer:innen von {org}",
        "home.body": "Kund:innen, Fans, ehemalige Mitarbeitende, Lieferanten und Partner: Werden Sie "
                     "Unterstützer:in und erfahren Sie zuerst, wenn Ihre Stimme zählt. Sie wählen, worüber "
                     "und wie oft Sie von uns hören, und können sich mit einem Klick abmelden.",
        "home.join": "Jetzt mitmachen",
        "joined.address": "Wir haben sie geschickt an: {email}",
        "joined.resend.title": "Keine E-Mail?",
        "joined.resend.body": "Sehen Sie im Spam-Ordner nach. Oder lassen Sie sich die E-Mail noch einmal "
                              "schicken (höchstens ein paar Mal pro Stunde):",
        "joined.resend.button": "E-Mail noch einmal senden",
        "unsub.instead.title": "Lieber seltener von uns hören?",
        "unsub.instead.fewer": "Weniger E-Mails: wählen Sie, wie oft",
        "unsub.instead.pause": "Eine Pause einlegen",
        "lang.de": "Deutsch",
        "lang.en": "English",
        "lang.switch": "Sprache",
        "join.title": "Werden Sie Unterstützer:in",
        "join.intro": "Kund:innen, Fans, ehemalige Mitarbeitende, Lieferanten und Partner: Wenn es darauf "
                      "ankommt, bitten wir Sie, etwas zu teilen, zu bewerten oder abzustimmen. Selten, "
                      "ehrlich, nie gegen eine Belohnung, und Sie können mit einem Klick wieder gehen.",
        "join.email": "E-Mail-Adresse",
        "join.name": "Name (freiwillig)",
        "join.kind": "Wie sind Sie mit uns verbunden?",
        "kind.fan": "Kund:in oder Fan",
        "kind.former_employee": "Ehemalige:r Mitarbeiter:in",
        "kind.supplier": "Lieferant",
        "kind.partner": "Partner",
        "kind.other": "Anders",
        "join.insider_note": "Ehemalige Mitarbeitende, Lieferanten und Partner: Wenn wir Sie je um eine "
                             "Bewertung bitten, nennen Sie darin bitte Ihre Verbindung zu uns.",
        "join.language": "Sprache unserer E-Mails",
        "join.interests": "Was interessiert Sie? (freiwillig)",
        "join.consent_legend": "Ihre Einwilligung",
        "join.submit": "Mitmachen",
        "join.privacy": "Wir speichern Ihre E-Mail-Adresse, Ihren Namen, wenn Sie ihn angeben, Ihre "
                        "Auswahl und einen Nachweis Ihrer Einwilligung, sonst nichts. Sie erhalten eine "
                        "E-Mail zur Bestätigung; ohne diese Bestätigung schreiben wir Ihnen nicht.",
        "join.honeypot": "Dieses Feld bitte leer lassen",
        "join.referred": "Sie wurden eingeladen. Willkommen!",
        "joined.title": "Fast geschafft: Bitte sehen Sie in Ihr Postfach",
        "joined.body": "Wir haben eine E-Mail an die eingegebene Adresse geschickt. Öffnen Sie den Link "
                       "darin, um zu bestätigen. Wenn in einigen Minuten nichts ankommt, sehen Sie bitte "
                       "im Spam-Ordner nach.",
        "error.summary": "Bitte prüfen Sie die markierten Felder.",
        "error.email.required": "Bitte geben Sie Ihre E-Mail-Adresse ein.",
        "error.email.invalid": "Das sieht nicht wie eine gültige E-Mail-Adresse aus.",
        "error.email.too_long": "Die E-Mail-Adresse ist zu lang (höchstens {max} Zeichen).",
        "error.name.too_long": "Der Name ist zu lang (höchstens {max} Zeichen).",
        "error.name.invalid": "Der Name enthält Zeichen, die wir nicht annehmen können.",
        "error.kind.required": "Bitte wählen Sie, wie Sie mit uns verbunden sind.",
        "error.kind.invalid": "Bitte wählen Sie eine der angebotenen Möglichkeiten.",
        "error.language.invalid": "Bitte wählen Sie Deutsch oder Englisch.",
        "error.interests.invalid": "Bitte wählen Sie nur aus den angebotenen Interessen.",
        "error.consent.required": "Bitte setzen Sie das Häkchen; ohne Ihre Einwilligung dürfen wir Ihnen "
                                  "nicht schreiben.",
        "error.honeypot": "Diese Eingabe sah automatisiert aus und wurde nicht angenommen. Bitte versuchen "
                          "Sie es noch einmal.",
        "error.csrf": "Das Formular war abgelaufen. Bitte prüfen Sie Ihre Angaben und senden Sie es erneut.",
        "error.asks.invalid": "Bitte wählen Sie eine der angebotenen Möglichkeiten.",
        "error.pause.invalid": "Bitte geben Sie ein Datum im Format JJJJ-MM-TT ein.",
        "error.pause.past": "Bitte wählen Sie ein Datum in der Zukunft.",
        "error.pause.too_far": "Bitte wählen Sie ein Datum innerhalb des nächsten Jahres.",
        "confirm.title": "Unterstützung bestätigen",
        "confirm.body": "Bitte bestätigen Sie, dass Sie mitmachen möchten. Dem stimmen Sie zu:",
        "confirm.button": "Ja, ich bestätige",
        "confirmed.title": "Willkommen! Sie sind jetzt Unterstützer:in.",
        "confirmed.body": "Vielen Dank. Hier ist Ihr persönlicher Link: Wenn Freund:innen darüber "
                          "mitmachen, wissen wir, dass Sie sie gewonnen haben.",
        "confirmed.copy": "Link kopieren",
        "confirmed.share": "Teilen",
        "confirmed.share_text": "Ich unterstütze sie. Mach mit:",
        "confirmed.preferences": "In Ihren Einstellungen wählen Sie, worüber und wie oft wir Ihnen schreiben.",
        "confirm.withdrawn.title": "Dieser Link gilt nicht mehr",
        "confirm.withdrawn.body": "Sie haben Ihre Einwilligung widerrufen, nachdem wir diesen Link "
                                  "verschickt haben; er kann daher nichts mehr bestätigen. Wenn Sie "
                                  "zurückkommen möchten, melden Sie sich bitte neu an.",
        "link.invalid.title": "Dieser Link ist ungültig",
        "link.invalid.body": "Er ist vielleicht unvollständig oder wurde verändert. Bitte kopieren Sie den "
                             "ganzen Link aus der E-Mail. Jede E-Mail von uns enthält am Ende auch einen "
                             "funktionierenden Abmeldelink.",
        "link.expired.title": "Dieser Link ist abgelaufen",
        "link.expired.body": "Bestätigungslinks gelten {days} Tage. Wir können Ihnen einen neuen schicken.",
        "link.new": "Neuen Link schicken",
        "link.resent.title": "Ein neuer Link ist unterwegs",
        "link.resent.body": "Wenn die Adresse zu jemandem gehört, der noch bestätigen muss, haben wir einen "
                            "neuen Bestätigungslink dorthin geschickt.",
        "join.again": "Neu anmelden",
        "prefs.title": "Ihre Einstellungen",
        "prefs.intro": "Wählen Sie, worüber und wie oft wir Ihnen schreiben. Änderungen gelten sofort.",
        "prefs.pending": "Sie haben Ihre E-Mail-Adresse noch nicht bestätigt: Bitte öffnen Sie zuerst den "
                         "Link in der Bestätigungs-E-Mail.",
        "prefs.asks": "Wie oft dürfen wir Sie höchstens fragen?",
        "prefs.asks.default": "Wie üblich (höchstens {n}-mal im Monat)",
        "prefs.asks.n": "Höchstens {n}-mal im Monat",
        "prefs.asks.one": "Höchstens einmal im Monat",
        "prefs.pause": "Pause bis (freiwillig)",
        "prefs.pause_hint": "Vor diesem Datum fragen wir Sie nichts. Leer lassen für keine Pause.",
        "prefs.save": "Einstellungen speichern",
        "prefs.saved": "Ihre Einstellungen sind gespeichert.",
        "prefs.referral": "Ihr persönlicher Link, um Freund:innen einzuladen:",
        "prefs.dialog": "Ihre Idee oder Ihr Anliegen: Sagen Sie es uns, und unterstützen Sie, was andere einbringen",
        "prefs.leave.title": "Austreten",
        "prefs.leave.body": "Widerrufen Sie Ihre Einwilligung und verlassen Sie die Liste. Wir schreiben "
                            "Ihnen dann nicht mehr.",
        "prefs.leave.button": "Austreten und Einwilligung widerrufen",
        "unsub.title": "Abmelden",
        "unsub.body": "Ein Klick, und Sie erhalten keine E-Mails mehr von uns. Sie können später jederzeit "
                      "wieder mitmachen.",
        "unsub.button": "Abmelden",
        "testlink.title": "Ein Link aus einer Test-Mail",
        "testlink.body": "Dieser Link stammt aus einer Test-Mail. Er öffnet die echte Seite, ändert aber "
                         "nichts: Niemand wurde abgemeldet, keine Einstellung gespeichert und keine Aktion "
                         "festgehalten.",
        "unsubscribed.title": "Sie sind abgemeldet",
        "unsubscribed.body": "Wir haben den Widerruf Ihrer Einwilligung festgehalten und schreiben Ihnen "
                             "nicht mehr. Danke für Ihre bisherige Unterstützung. Doch anders überlegt? Sie "
                             "können jederzeit wieder mitmachen.",
        "limit.title": "Zu viele Versuche",
        "limit.body": "Bitte warten Sie einen Moment und versuchen Sie es dann noch einmal.",
        "mail.greeting": "Hallo {name},",
        "mail.greeting_anon": "Hallo,",
        "mail.confirm.subject": "Bitte bestätigen Sie Ihre Unterstützung",
        "mail.confirm.body": "bitte bestätigen Sie mit diesem Link, dass Sie bei unseren Unterstützer:innen "
                             "mitmachen möchten:",
        "mail.confirm.button": "Unterstützung bestätigen",
        "mail.confirm.expiry": "Der Link gilt {days} Tage. Wenn Sie sich nicht angemeldet haben, ignorieren "
                               "Sie diese E-Mail einfach: Ohne Ihre Bestätigung geschieht nichts.",
        "mail.already.subject": "Sie sind schon dabei",
        "mail.already.body": "jemand, vermutlich Sie, wollte sich gerade mit dieser Adresse anmelden. Sie "
                             "sind bereits Unterstützer:in, es hat sich also nichts geändert.",
        "mail.already.preferences": "Hier ändern Sie, worüber und wie oft wir Ihnen schreiben:",
        "mail.already.referral": "Ihr persönlicher Link, um Freund:innen einzuladen:",
        "mail.why.signup": "Sie erhalten diese E-Mail, weil diese Adresse in das Unterstützer-Formular von "
                           "{org} eingetragen wurde. Ohne Ihre Bestätigung schreiben wir Ihnen nicht wieder.",
        "mail.why.supporter": "Sie erhalten diese E-Mail, weil Sie {org} unterstützen und diese Adresse gerade "
                              "in unser Unterstützer-Formular eingetragen wurde.",
        "mail.why.campaign": "Sie erhalten diese E-Mail, weil Sie am {date} eingewilligt haben, als "
                             "Unterstützer:in Nachrichten von {org} zu bekommen.",
        "mail.footer.preferences": "Einstellungen",
        "mail.footer.dialog": "Ihre Idee oder Ihr Anliegen",
        "mail.footer.unsubscribe": "Abmelden",
        "mail.footer.privacy": "Datenschutz",
        "mail.signature": "Vielen Dank!",
    },
}


def t(key: str, lang: str, **values) -> str:
    """The message `key` in `lang` (English if the language is unknown), formatted with `values`."""
    text = CATALOG.get(lang, CATALOG[DEFAULT_LANGUAGE])[key]
    return text.format(**values) if values else text


def negotiate(requested: str | None, accept_language) -> str:
    """The page language: `?lang=` if it is one we have, else the best Accept-Language match."""
    if requested in LANGUAGES:
        return requested
    if accept_language is not None:
        best = accept_language.best_match(LANGUAGES)
        if best:
            return best
    return DEFAULT_LANGUAGE
