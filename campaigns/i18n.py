"""German and English for the action pages (the join flow's mechanism: a flat catalog, `t(key, lang)`).

Keys not found here fall back to supporters.i18n (site title, language names, limit page).
"""

from __future__ import annotations

from supporters import i18n as supporters_i18n

CATALOG: dict[str, dict[str, str]] = {
    "en": {
        "act.title.share": "Share",
        "act.title.review": "Write a review",
        "act.title.poll": "Vote",
        "act.title.petition": "Sign the petition",
        "act.title.survey": "Survey",
        "survey.required": "(required)",
        "survey.scale.nps": "0 = not at all likely, 10 = extremely likely",
        "survey.scale.rating": "1 = very poor, 5 = excellent",
        "survey.max_chars": "At most {limit} characters.",
        "survey.submit": "Send my answers",
        "survey.save": "Save and finish later",
        "survey.saved": "Your answers are saved. You can change them until the survey closes.",
        "survey.more": "Thank you! Based on your answers, there is one more thing we would like to ask.",
        "survey.closed": "This survey is closed: answers can no longer be changed.",
        "survey.closes": "The survey closes on {when}.",
        "survey.thanks": "Thank you for your answers!",
        "survey.change": "Change my answers",
        "survey.reply_title": "Would you like a personal reply?",
        "survey.reply_intro": "If something bothered you, we would like to hear more and answer you personally. "
                              "Only if you want to.",
        "survey.reply_button": "Yes, please contact me",
        "survey.dialog_title": "Or raise it where others can back it",
        "survey.dialog_intro": "Post it as an idea or a concern: other supporters can back it, and we answer "
                               "publicly once enough of them do.",
        "survey.dialog_link": "Raise an idea or a concern",
        "survey.reply_noted": "Noted: someone from our team will reply to you personally.",
        "survey.review_title": "Would you like to write a review?",
        "survey.review_link": "Write a review",
        "survey.review_all": "We ask everyone who answered, whatever their answers. Good or critical: "
                             "your honest opinion counts, and there is no reward of any kind.",
        "act.voluntary": "Only if you want to: nothing happens if you do nothing.",
        "share.intro": "Here is a suggestion. Change the text as you like: these are your words.",
        "share.text": "Your text",
        "share.on": "Share on",
        "share.network.facebook": "Facebook",
        "share.network.x": "X",
        "share.network.linkedin": "LinkedIn",
        "share.network.xing": "XING",
        "share.network.whatsapp": "WhatsApp",
        "share.network.email": "Email",
        "share.network.copy": "Copy link",
        "share.copy_hint": "Select and copy this link:",
        "share.what": "What you share:",
        "share.thanks": "Thank you for sharing!",
        "review.intro": "If you have a genuine experience with us, an honest review helps others decide. "
                        "Good or critical: your opinion counts.",
        "review.no_reward": "There is no reward of any kind for a review, and we will never ask you to change one.",
        "review.disclose": "You are connected to us ({kind}). Please say so in your review, e.g. "
                           "\"I used to work there\" or \"I am a supplier\": the review sites ask for it, "
                           "and honesty is what makes a review worth reading.",
        "review.open": "Open {name}",
        "review.done_label": "I wrote a review on {name}",
        "review.link": "Link to your review (optional)",
        "review.confirm": "Confirm",
        "review.done": "Noted, thank you.",
        "review.thanks": "Thank you for taking the time.",
        "review.none_for_you": "The review sites of this campaign only accept reviews from people in another "
                               "relationship with us, so there is nothing to do for you here. Thank you anyway!",
        "poll.choose_one": "Choose one option.",
        "poll.choose_many": "Choose one or more options.",
        "poll.submit": "Vote",
        "poll.change": "Change my vote",
        "poll.your_vote": "Your vote is recorded. You can change it until the poll closes.",
        "poll.closes": "The poll closes on {when}.",
        "poll.closed": "This poll is closed.",
        "poll.results": "Votes so far: {count}",
        "petition.comment": "Comment (optional, at most {limit} characters)",
        "petition.submit": "Sign",
        "petition.signed": "You have signed. Thank you! We will tell you when there is an official answer.",
        "petition.count": "{count} signatures",
        "petition.goal": "{count} of {goal} signatures",
        "problem.title": "This did not work",
        "problem.link": "This link is not valid. Please use the link from your email exactly as it arrived.",
        "problem.input": "Please check your input:",
        "problem.closed": "This is closed: nothing was recorded.",
        "problem.already": "You have already signed: nothing new was recorded.",
        "kind.former_employee": "former employee",
        "kind.supplier": "supplier",
        "kind.partner": "partner",
    },
    "de": {
        "act.title.share": "Teilen",
        "act.title.review": "Eine Bewertung schreiben",
        "act.title.poll": "Abstimmen",
        "act.title.petition": "Die Petition unterschreiben",
        "act.title.survey": "Umfrage",
        "survey.required": "(Pflichtfrage)",
        "survey.scale.nps": "0 = sehr unwahrscheinlich, 10 = äußerst wahrscheinlich",
        "survey.scale.rating": "1 = sehr schlecht, 5 = ausgezeichnet",
        "survey.max_chars": "Höchstens {limit} Zeichen.",
        "survey.submit": "Antworten senden",
        "survey.save": "Speichern und später fortsetzen",
        "survey.saved": "Ihre Antworten sind gespeichert. Sie können sie ändern, bis die Umfrage endet.",
        "survey.more": "Danke! Zu Ihren Antworten möchten wir noch etwas fragen.",
        "survey.closed": "Diese Umfrage ist beendet: Antworten können nicht mehr geändert werden.",
        "survey.closes": "Die Umfrage endet am {when}.",
        "survey.thanks": "Vielen Dank für Ihre Antworten!",
        "survey.change": "Meine Antworten ändern",
        "survey.reply_title": "Möchten Sie eine persönliche Antwort?",
        "survey.reply_intro": "Wenn Sie etwas gestört hat, möchten wir mehr darüber erfahren und Ihnen persönlich "
                              "antworten. Nur wenn Sie möchten.",
        "survey.reply_button": "Ja, bitte melden Sie sich bei mir",
        "survey.dialog_title": "Oder bringen Sie es dort ein, wo andere es unterstützen können",
        "survey.dialog_intro": "Stellen Sie es als Idee oder Anliegen ein: Andere Unterstützer:innen können es "
                               "unterstützen, und wir antworten öffentlich, sobald genug es tun.",
        "survey.dialog_link": "Idee oder Anliegen einbringen",
        "survey.reply_noted": "Notiert: Jemand aus unserem Team antwortet Ihnen persönlich.",
        "survey.review_title": "Möchten Sie eine Bewertung schreiben?",
        "survey.review_link": "Eine Bewertung schreiben",
        "survey.review_all": "Wir fragen alle, die geantwortet haben, ganz gleich wie. Gut oder kritisch: Ihre "
                             "ehrliche Meinung zählt, und es gibt keinerlei Belohnung.",
        "act.voluntary": "Nur wenn Sie möchten: Wenn Sie nichts tun, passiert nichts.",
        "share.intro": "Hier ist ein Vorschlag. Ändern Sie den Text, wie Sie möchten: Es sind Ihre Worte.",
        "share.text": "Ihr Text",
        "share.on": "Teilen auf",
        "share.network.facebook": "Facebook",
        "share.network.x": "X",
        "share.network.linkedin": "LinkedIn",
        "share.network.xing": "XING",
        "share.network.whatsapp": "WhatsApp",
        "share.network.email": "E-Mail",
        "share.network.copy": "Link kopieren",
        "share.what": "Was Sie teilen:",
        "share.copy_hint": "Markieren und kopieren Sie diesen Link:",
        "share.thanks": "Danke fürs Teilen!",
        "review.intro": "Wenn Sie echte Erfahrungen mit uns haben, hilft eine ehrliche Bewertung anderen bei der "
                        "Entscheidung. Ob gut oder kritisch: Ihre Meinung zählt.",
        "review.no_reward": "Für eine Bewertung gibt es keinerlei Belohnung, und wir werden Sie nie bitten, "
                            "eine Bewertung zu ändern.",
        "review.disclose": "Sie sind mit uns verbunden ({kind}). Bitte sagen Sie das in Ihrer Bewertung, z. B. "
                           "„Ich habe dort gearbeitet“ oder „Ich bin Lieferant“: Die Bewertungsportale verlangen "
                           "das, und erst Ehrlichkeit macht eine Bewertung lesenswert.",
        "review.open": "{name} öffnen",
        "review.done_label": "Ich habe eine Bewertung auf {name} geschrieben",
        "review.link": "Link zu Ihrer Bewertung (optional)",
        "review.confirm": "Bestätigen",
        "review.done": "Vermerkt, danke.",
        "review.thanks": "Danke, dass Sie sich die Zeit genommen haben.",
        "review.none_for_you": "Die Bewertungsportale dieser Kampagne nehmen nur Bewertungen von Menschen in einer "
                               "anderen Beziehung zu uns an, hier gibt es für Sie also nichts zu tun. Trotzdem danke!",
        "poll.choose_one": "Wählen Sie eine Option.",
        "poll.choose_many": "Wählen Sie eine oder mehrere Optionen.",
        "poll.submit": "Abstimmen",
        "poll.change": "Meine Stimme ändern",
        "poll.your_vote": "Ihre Stimme ist gezählt. Sie können sie ändern, bis die Abstimmung endet.",
        "poll.closes": "Die Abstimmung endet am {when}.",
        "poll.closed": "Diese Abstimmung ist beendet.",
        "poll.results": "Bisher abgegebene Stimmen: {count}",
        "petition.comment": "Kommentar (optional, höchstens {limit} Zeichen)",
        "petition.submit": "Unterschreiben",
        "petition.signed": "Sie haben unterschrieben. Danke! Wir informieren Sie, sobald es eine offizielle "
                           "Antwort gibt.",
        "petition.count": "{count} Unterschriften",
        "petition.goal": "{count} von {goal} Unterschriften",
        "problem.title": "Das hat nicht geklappt",
        "problem.link": "Dieser Link ist ungültig. Bitte verwenden Sie den Link aus Ihrer E-Mail genau so, wie er "
                        "angekommen ist.",
        "problem.input": "Bitte prüfen Sie Ihre Eingabe:",
        "problem.closed": "Das ist bereits beendet: Es wurde nichts gespeichert.",
        "problem.already": "Sie haben bereits unterschrieben: Es wurde nichts Neues gespeichert.",
        "kind.former_employee": "ehemalige:r Mitarbeiter:in",
        "kind.supplier": "Lieferant",
        "kind.partner": "Partner",
    },
}


def t(key: str, lang: str, **values) -> str:
    catalog = CATALOG.get(lang, CATALOG["en"])
    if key not in catalog:
        return supporters_i18n.t(key, lang, **values)
    text = catalog[key]
    return text.format(**values) if values else text
