from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self):
        # The order lifecycle keeps each order's payment in step through this book (orders.payment_port).
        # Imported here, not at the top: models may be imported only once the app registry is ready.
        from orders.payment_port import payment_book_register
        from payments.book import PaymentBook

        payment_book_register(PaymentBook())
