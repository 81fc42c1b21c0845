"""The demo data of ``make run`` (``manage.py seed_demo``): products and the two well-known logins."""

DEMO_PRODUCTS = [
    # sku, name, price, on hand
    ("TEE-001", "Organic cotton T-shirt", "19.00", 40),
    ("MUG-002", "Enamel camping mug", "12.50", 25),
    ("BAG-003", "Canvas tote bag", "15.00", 30),
    ("CAP-004", "Embroidered cap", "22.00", 3),
    ("SCK-005", "Merino socks", "14.00", 60),
    ("NTB-006", "Dot-grid notebook", "9.90", 2),
    ("PEN-007", "Brass fountain pen", "48.00", 5),
    ("BTL-008", "Insulated water bottle", "29.00", 18),
    ("HDY-009", "Hooded sweatshirt", "55.00", 12),
    ("STK-010", "Sticker pack", "4.50", 200),
    ("CFE-011", "Vietnamese coffee filter (phin)", "8.00", 1),
    ("LMP-012", "Desk lamp", "64.00", 0),
]
DEMO_SHOPPER = ("shopper", "shopper@example.com", "shopper-pass-123")
DEMO_STAFF = ("staff", "staff@example.com", "staff-pass-123")
