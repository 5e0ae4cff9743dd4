import sys, time
from playwright.sync_api import sync_playwright
path = sys.argv[1]
js = sys.argv[2] == "js" if len(sys.argv) > 2 else True
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox","--disable-gpu"])
    ctx = b.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=js)
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    t = time.perf_counter()
    page.goto("file://" + path, wait_until="load")
    print("load", time.perf_counter() - t)
    if js:
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        print("painted", time.perf_counter() - t)
        print(page.evaluate("() => JSON.stringify(performance.getEntriesByType('navigation')[0].toJSON())"))
    b.close()
