"""Every app of rules.py wrapped in wsgiref.validate.validator, with its warnings made errors:
a PEP 3333 violation by the server (or the app) then fails the request."""

import warnings
from wsgiref.validate import validator

import rules

warnings.simplefilter("error")

for _name in ("write", "late_start", "generator_close", "file_wrapper", "read_all",
              "file_wrapper_filelike", "latin1", "environ_keys", "many_items",
              "exc_info_replace", "empty_generator"):
    globals()[_name] = validator(getattr(rules, _name))
