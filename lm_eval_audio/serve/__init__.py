"""Serve-backed evaluation: the wire format of audio (`wire`), the request path shared by the
served model classes (`client`), and task-name help for their errors (`variants`)."""
