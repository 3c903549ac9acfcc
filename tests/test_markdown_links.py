"""Links in campaign Markdown: found, tracked and shown as text like CommonMark reads them."""

from campaigns.render import body_urls, link_sentinels, markdown_to_html, markdown_to_text

BODY = ("Read [about us](https://company.example/about_(de)) and [the paper](https://e.org/p \"Title\"), "
        "(see also [this](https://e.org/a)), or <https://e.org/plain>.")
URLS = ["https://company.example/about_(de)", "https://e.org/p", "https://e.org/a", "https://e.org/plain"]


def test_urls_with_balanced_parentheses_are_found_whole_and_a_closing_parenthesis_after_a_link_is_text():
    assert body_urls(BODY) == URLS
    # What the HTML part links to is the same URL: markdown-it follows CommonMark here too.
    html = markdown_to_html(BODY)
    assert 'href="https://company.example/about_(de)"' in html and 'href="https://e.org/a"' in html


def test_every_found_url_is_replaced_by_its_slot_and_the_text_part_keeps_whole_urls():
    links = {url: f"link:{i}" for i, url in enumerate(URLS)}
    body, slots = link_sentinels(BODY, links, 0, "SLOT{}")
    assert slots == links
    assert "](https://" not in body and body.count("SLOT") == 4  # an autolink keeps its URL as the label
    assert "(see also [this](SLOT2))" in body
    text = markdown_to_text(BODY)
    assert "about us (https://company.example/about_(de))" in text and "this (https://e.org/a))" in text
