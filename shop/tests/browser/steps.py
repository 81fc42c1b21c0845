"""Steps the browser tests share."""

from playwright.sync_api import expect


def sign_up(page, username="carol"):
    page.goto("/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password:", exact=True).fill("a-strong-pass-42")
    page.get_by_label("Password confirmation:").fill("a-strong-pass-42")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text(f"Signed in as {username}")).to_be_visible()
