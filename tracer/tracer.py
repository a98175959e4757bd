"""execwm tracer: records the locals of a program's own frames at every event.

Runs inside Pyodide (CPython 3.14) with ``sys.monitoring`` and, for differential
tests only, on native CPython 3.11 with ``sys.settrace`` (``python3 tracer.py``
reads one JSON request per stdin line and writes one JSON trace per line).

Events follow ``sys.settrace`` semantics as CPython 3.12+ implements them on top
of ``sys.monitoring`` (Python/legacy_tracing.c): PY_START/PY_RESUME/PY_THROW give
``call``, LINE and a backward jump to the start of the same line give ``line``,
PY_RETURN/PY_YIELD give ``return`` with the value, PY_UNWIND gives ``return``
with a null arg, RAISE/STOP_ITERATION give ``exception``. sys.monitoring is used
because its events keep firing inside ``try/except BaseException`` loops, so the
step budget cannot be dodged by catching the stop exception.

The value encoder never runs user code: builtin scalars go through the builtin
type's own ``__repr__``, containers are walked here, and instances of user
classes are read from their real ``__dict__``/slots through C descriptors.

The file reads leaf to root: constants and the C functions the tracer calls;
values (reading objects without running their code, then the encoder);
exceptions; the guard (audit hook and stand-ins); modules, restored after each
run; interpreter state, compared after each run; the trampolines that run the
program; one run (recording, the event callbacks, the trace); and ``_build``,
which wires them together and returns the driver's entry points.

The sandbox runs this file in a private namespace that no module holds, and
user code runs in a fresh module dict. The module level holds only functions,
classes and constants; all state lives in the closures that the builders
(``make_*``, ``install_guard``, ``new_run``, ``_build``) return, so a program
that cannot get hold of a tracer function or frame reaches none of it.
"""

# Imported in this order on purpose: a module first imported here takes its place in sys.modules
# in this order, and the modules are checked after each run in sys.modules order.
import sys
import builtins
import io
import itertools
import json
import operator
import random
import re
import types
import warnings
import gc
import os
import abc
import functools
import _abc
import atexit
import contextvars
import codecs

TRUNCATION_MARKER = '\u2026<truncated>'
PROGRAM_FILE = '<program>'
ENTRY_FILE = '<entry>'

# Py_TPFLAGS_HEAPTYPE: set on classes made by class statements (or type()), not on builtin types.
HEAP_TYPE_FLAG = 1 << 9
# A little under log10(2): bit_length() * LOG10_2 never overestimates the digits of an int.
LOG10_2 = 0.30102999566398
# The deepest nesting the encoder follows; anything deeper prints as '...'.
MAX_NEST = 100
# The sys.monitoring tool ids the tracer tries, in order: 3 and 4 have no assigned use, then
# OPTIMIZER_ID (5), COVERAGE_ID (1), PROFILER_ID (2) and DEBUGGER_ID (0) last, so that a
# debugger or coverage tool already holding its id keeps it.
MONITORING_TOOL_IDS = (4, 3, 5, 1, 2, 0)
MONITORING_TOOL_NAME = 'execwm'
# Every tool id sys.monitoring has.
ALL_MONITORING_TOOLS = range(6)

# ---------------------------------------------------------------- C functions
#
# Taken when this file is loaded, before any program runs: the builtin types' own methods and
# descriptors (a subclass's override never runs), and module attributes a program could patch.

_type = type
_id = id
_len = len
_isinstance = isinstance
_set = set
_map = map
_all = all
_max = max
_list = list
_tuple = tuple
_frozenset = frozenset
_is = operator.is_
_chain = itertools.chain
_str_repr = str.__repr__
_int_repr = int.__repr__
_float_repr = float.__repr__
_complex_repr = complex.__repr__
_bytes_repr = bytes.__repr__
_bytearray_repr = bytearray.__repr__
_range_repr = range.__repr__
_list_repr = list.__repr__
_tuple_repr = tuple.__repr__
_set_repr = set.__repr__
_dict_repr = dict.__repr__
_list_iter = list.__iter__
_tuple_iter = tuple.__iter__
_set_iter = set.__iter__
_frozenset_iter = frozenset.__iter__
_dict_items = dict.items
_dict_keys = dict.keys
_dict_values = dict.values
_dict_get = dict.get
_MappingProxy = types.MappingProxyType
_mp_get = types.MappingProxyType.get
_mp_items = types.MappingProxyType.items
_mp_keys = types.MappingProxyType.keys
_mp_values = types.MappingProxyType.values
_type_name = type.__dict__['__name__'].__get__
_type_mro = type.__dict__['__mro__'].__get__
_type_dict = type.__dict__['__dict__'].__get__
_type_flags = type.__dict__['__flags__'].__get__
_mod_dict = types.ModuleType.__dict__['__dict__'].__get__
_exc_args = BaseException.__dict__['args'].__get__
_getframe = sys._getframe
_int_max_digits_get = getattr(sys, 'get_int_max_str_digits', None)
_int_max_digits_set = getattr(sys, 'set_int_max_str_digits', None)
_GetSet = types.GetSetDescriptorType
_Member = types.MemberDescriptorType
_NoneType = type(None)
_FunctionType = types.FunctionType
_BuiltinFunctionType = types.BuiltinFunctionType
_MethodType = types.MethodType
_MethodWrapper = type((0).__add__)
_ModuleType = types.ModuleType
_GeneratorType = types.GeneratorType
_CoroutineType = types.CoroutineType
_AsyncGenType = types.AsyncGeneratorType
_count = itertools.count
_count_repr = itertools.count.__repr__
_LruWrapper = type(functools.lru_cache(None)(len))
_lru_clear = _LruWrapper.cache_clear
_environ_data = os.environ._data
_gc_callbacks = gc.callbacks
_copy_context = contextvars.copy_context
_abc_token = abc.get_cache_token
_abc_dump = _abc._get_dump
_atexit_count = getattr(atexit, '_ncallbacks', None)

# ---------------------------------------------------------------- JSON
#
# The C encoder, captured now: json.dumps goes through classes a program could patch. Traces are
# ASCII (other characters as \uXXXX escapes): Node decodes and parses ASCII several times faster
# than UTF-8 text with a few non-ASCII characters (such as the truncation marker).
_esc = json.encoder.encode_basestring_ascii
_c_encoder = json.encoder.c_make_encoder(None, None, _esc, None, ': ', ', ', False, False, True)
# In an ASCII trace: an escaped backslash, a surrogate pair, or a lone surrogate (group 1).
_surrogates = re.compile(r'\\\\|\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|(\\ud[89a-f][0-9a-f]{2})')


def dumps(obj):
    return ''.join(_c_encoder(obj, 0))


def lone_to_fffd(m):
    return m.group() if m.group(1) is None else '\\ufffd'


class _Stop(BaseException):
    """Raised into the program when a limit ends the run; re-raised at every later event."""


# ---------------------------------------------------------------- values: reading objects
#
# What the encoder knows of a value it learns from C descriptors and the type's own dicts, so
# reading a value never runs the program's code.

# Exact types whose values cannot change and whose encoding runs no user code.
SCALAR_TYPES = frozenset((int, bool, float, type(None), str))
# Values printed as a tag (`<function f>`): they carry no id.
TAG_TYPES = frozenset((types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType,
                       types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType))
# Exact types whose encoding the snapshot cache reuses while a variable holds the same object.
IMMUTABLE_TYPES = frozenset((int, bool, str, float, type(None), bytes, complex, range,
                             types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type))
# Exact types that always carry an id, and bases whose instances never do.
MUTABLE_TYPES = frozenset((list, dict, set, bytearray))
IMMUTABLE_BASES = (tuple, str, int, float, bytes, frozenset, complex, range)
# Flat containers of these (or of short strings) print through their C repr.
NUMERIC_TYPES = frozenset((int, bool, float, type(None)))
STR_ONLY = frozenset((str,))
# The dict views, printed as their repr does.
DICT_VIEW_NAMES = {type({}.keys()): 'dict_keys', type({}.values()): 'dict_values',
                   type({}.items()): 'dict_items'}
# Standard-library classes whose own repr runs no program code; datetime and time only without
# a tzinfo (which could be the program's).
STDLIB_REPR_CLASSES = (('decimal', 'Decimal'), ('fractions', 'Fraction'), ('re', 'Pattern'),
                       ('re', 'Match'), ('datetime', 'date'), ('datetime', 'timedelta'))
STDLIB_NAIVE_CLASSES = ('datetime', 'time')


def is_heap_type(t):
    """True for classes created by class statements (not builtin/C types)."""
    return bool(_type_flags(t) & HEAP_TYPE_FLAG)


def stdlib_class(module, name):
    """A class of a loaded standard-library module, or None; read from the module's dict."""
    m = sys.modules.get(module)
    if m is None:
        return None
    return _dict_get(_mod_dict(m), name)


def repr_owner(t):
    """The first class of t's MRO that defines __repr__."""
    for k in _type_mro(t):
        if '__repr__' in _type_dict(k):
            return k
    return object


def has_attrs(t):
    """True when instances of t have a __dict__ or slots."""
    for k in _type_mro(t):
        d = _type_dict(k)
        if '__dict__' in d or '__slots__' in d:
            return True
    return False


def is_program_function(f):
    """True for a function compiled from the program."""
    code = _mp_get(_type_dict(_type(f)), '__code__') if _type(f) is _FunctionType else None
    if code is None:
        return False
    return code.__get__(f).co_filename == PROGRAM_FILE


def instance_attrs(v, t):
    """(name, value) pairs from the real instance dict and slots, without user code."""
    out = []
    mro = _type_mro(t)
    for k in mro:
        desc = _mp_get(_type_dict(k), '__dict__')
        if desc is not None:
            if _type(desc) is _GetSet:
                d = desc.__get__(v, t)
                if _type(d) is dict:
                    for name, val in _dict_items(d):
                        if _type(name) is str:
                            out.append((name, val))
            break
    for k in mro:
        slots = _mp_get(_type_dict(k), '__slots__')
        if slots is None:
            continue
        if _type(slots) is str:
            slots = (slots,)
        if _type(slots) not in (tuple, list):
            continue
        for name in slots:
            if _type(name) is not str or name in ('__dict__', '__weakref__'):
                continue
            desc = _mp_get(_type_dict(k), name)
            if _type(desc) is _Member:
                try:
                    out.append((name, desc.__get__(v, t)))
                except AttributeError:
                    pass
    return out


def prefix_items(limit):
    """Every item of a flat container prints as at least one character plus ', ', so its first
    prefix_items(limit) items already print past `limit`: a longer list or tuple is printed from
    them alone (the cut keeps limit + 1 characters, all inside that prefix)."""
    return limit // 3 + 2


# ---------------------------------------------------------------- values: the encoder
#
# An encoder is built once per value limit (maxValueChars) and reused by every run with that
# limit. Its functions share the limit, the flag `cut` (set when a repr was shortened) and the
# set of containers being printed (for cycles) as closure cells, the cheapest state to reach
# from the hot path.

def make_scalar_printers(limit, cut):
    """(r_int, r_str, r_bytes, r_bytearray): the repr of an exact int, str, bytes or bytearray,
    cut to limit + 1 characters (setting cut[0]) without building the whole repr of a huge value."""
    int_cut = 10 ** (limit + 1)

    def r_int(v):
        if -int_cut < v < int_cut:
            return _int_repr(v)
        cut[0] = True
        neg = v < 0
        if neg:
            v = -v
        # Keeps the leading limit + 8 digits or more (limit + 1 are printed), so converting them
        # costs the same however long v is.
        digits = int(v.bit_length() * LOG10_2) - limit - 8
        if digits > 0:
            v //= 10 ** digits
        saved = _int_max_digits_get() if _int_max_digits_get else 0
        if _int_max_digits_set:
            _int_max_digits_set(0)
        try:
            s = _int_repr(v)
        finally:
            if _int_max_digits_set:
                _int_max_digits_set(saved)
        return ('-' if neg else '') + s[:limit + 1]

    def r_str(v):
        if _len(v) <= limit:
            return _str_repr(v)
        cut[0] = True
        head = v[:limit + 1]
        s = _str_repr(head)
        # repr picks its quote from the whole string; the head may choose differently.
        full_dq = "'" in v and '"' not in v
        if full_dq and s[0] == "'":
            s = '"' + s[1:-1] + '"'
        elif not full_dq and s[0] == '"':
            s = "'" + s[1:-1].replace("'", "\\'") + "'"
        return s

    def r_bytes(v):
        if _len(v) <= limit:
            return _bytes_repr(v)
        cut[0] = True
        return _bytes_repr(v[:limit + 1])

    def r_bytearray(v):
        if _len(v) <= limit:
            return _bytearray_repr(v)
        cut[0] = True
        return _bytearray_repr(bytearray(v[:limit + 1]))

    return r_int, r_str, r_bytes, r_bytearray


def make_c_repr(limit, cut):
    """c_repr_flat(v, t, crepr): the builtin C repr `crepr` of an exact list, tuple, set or dict
    `t` of numbers or short strings, much faster than walking it in Python, cut like the walker
    cuts; None when v must be walked."""
    head = prefix_items(limit)
    # A flat container of more items is walked instead: the walk stops after `limit` characters,
    # the C repr would build the whole text.
    fast_max = 4 * limit

    def flat(items):
        """True when the builtin C repr of a container of these items runs no user code and
        stays short: numbers/None, or short strings.
        `items` is an exact builtin container or a dict view (iterated twice, never user code)."""
        ts = _set(_map(_type, items))
        if ts <= NUMERIC_TYPES:
            return True
        return ts == STR_ONLY and _max(_map(_len, items), default=0) <= limit

    def c_repr(crepr, v):
        """The C repr of a flat container, cut like the walker cuts; None if it cannot be used."""
        try:
            s = crepr(v)
        except ValueError:  # an int beyond the int->str digit limit
            return None
        if _len(s) > limit:
            cut[0] = True
            return s[:limit + 1]
        return s

    def c_repr_head(crepr, v):
        """c_repr of a flat list or tuple longer than `head` items, from its first items only;
        None when those items are not flat."""
        part = v[:head]
        if not flat(part):
            return None
        s = c_repr(crepr, part)
        if s is not None:
            cut[0] = True
        return s

    def c_repr_flat(v, t, crepr):
        if _type(v) is not t:
            return None
        if _len(v) > head and (t is list or t is tuple):
            s = c_repr_head(crepr, v)
            if s is not None:
                return s
        if _len(v) <= fast_max and flat(v) and (t is not dict or flat(_dict_values(v))):
            return c_repr(crepr, v)
        return None

    return c_repr_flat


def make_reuse_check(limit):
    """(contents, unchanged): when a container's encoding can be reused. contents(v, t) keeps the
    objects the encoding depends on; unchanged(v, kept) tells, in C, whether v still holds them."""
    head = prefix_items(limit)

    def contents(v, t):
        """For an exact list, or a short exact set or dict, holding only scalars: (longer,
        items), the objects its encoding depends on, in order; None for any other value.
        Scalars cannot change, so while a container holds the same objects (by identity) its
        encoding stays the same. A list longer than `head` prints from its first `head` items
        alone (see c_repr_head; the walker stops within them too): `longer` is set and
        `items` holds those."""
        if t is list:
            items = v[:head]
            if _set(_map(_type, items)) <= SCALAR_TYPES:
                return (_len(v) > head, items)
        elif t is set:
            if _len(v) <= head and _set(_map(_type, v)) <= SCALAR_TYPES:
                return (False, _list(v))
        elif t is dict:
            if (_len(v) <= head and _set(_map(_type, v)) <= SCALAR_TYPES
                    and _set(_map(_type, _dict_values(v))) <= SCALAR_TYPES):
                return (False, _list(_chain(v, _dict_values(v))))
        return None

    def unchanged(v, kept):
        """Whether a container still holds the items contents() kept, compared in C."""
        longer, items = kept
        if longer:
            return _len(v) > head and _all(_map(_is, v, items))
        if _type(v) is dict:
            return _len(v) * 2 == _len(items) and _all(_map(_is, _chain(v, _dict_values(v)), items))
        return _len(v) == _len(items) and _all(_map(_is, v, items))

    return contents, unchanged


def make_encoder(limit):
    """Returns (encode, encode_json, contents, unchanged, reset): encode(v) -> Value dict with
    per-trace object ids, encode_json(v) -> the same Value as dumps() writes it, contents and
    unchanged tell when a container's encoding can be reused; reset() starts a new trace (the
    encoder is built once per limit, not once per program)."""
    ids = {}
    keep = []  # keeps numbered objects alive so that id() values stay unique
    cut = [False]
    active = set()
    r_int, r_str, r_bytes, r_bytearray = make_scalar_printers(limit, cut)
    c_repr_flat = make_c_repr(limit, cut)

    # The walker is recursive: r() dispatches on the value's type to the printers below, and
    # they call r() for what the value holds.

    def walk(k, items, show, open_, close, nest, n=0, parts=None):
        """open_ + the items shown by show(item, nest), joined by ', ' + close, stopped (and cut
        set) once past `limit` characters counted from n; open_ + '...' + close when the object
        `k` (an id) is already being printed. Every container and object walk goes through here."""
        if k in active:
            return open_ + '...' + close
        active.add(k)
        try:
            if parts is None:
                parts = []
            for x in items:
                s = show(x, nest)
                parts.append(s)
                n += _len(s) + 2
                if n > limit or cut[0]:
                    cut[0] = True
                    break
            return open_ + ', '.join(parts) + close
        finally:
            active.discard(k)

    def show_item(kv, nest):
        """`key: value` of a dict item."""
        return r(kv[0], nest) + ': ' + r(kv[1], nest)

    def show_field(kv, nest):
        """`name=value` of an attribute or a named tuple's field."""
        return str(kv[0]) + '=' + r(kv[1], nest)

    def r_list(v, nest):
        s = c_repr_flat(v, list, _list_repr)
        if s is not None:
            return s
        return walk(_id(v), _list_iter(v), r, '[', ']', nest)

    def r_tuple(v, nest):
        s = c_repr_flat(v, tuple, _tuple_repr)
        if s is not None:
            return s
        if _len(v) == 1:
            return walk(_id(v), _tuple_iter(v), r, '(', ',)', nest)
        return walk(_id(v), _tuple_iter(v), r, '(', ')', nest)

    def r_set(v, nest):
        if _len(v) == 0:
            return 'set()'
        s = c_repr_flat(v, set, _set_repr)
        if s is not None:
            return s
        return walk(_id(v), _set_iter(v), r, '{', '}', nest)

    def r_frozenset(v, nest):
        if _len(v) == 0:
            return 'frozenset()'
        return walk(_id(v), _frozenset_iter(v), r, 'frozenset({', '})', nest)

    def r_dict(v, nest):
        s = c_repr_flat(v, dict, _dict_repr)
        if s is not None:
            return s
        return walk(_id(v), _dict_items(v), show_item, '{', '}', nest)

    atoms = {
        int: r_int,
        bool: lambda v: 'True' if v else 'False',
        str: r_str,
        float: _float_repr,
        _NoneType: lambda v: 'None',
        bytes: r_bytes,
        complex: _complex_repr,
        range: _range_repr,
        type(...): lambda v: 'Ellipsis',
        type(NotImplemented): lambda v: 'NotImplemented',
    }
    containers = {
        list: r_list,
        tuple: r_tuple,
        dict: r_dict,
        set: r_set,
        frozenset: r_frozenset,
    }

    def r(v, nest=0):
        t = _type(v)
        f = atoms.get(t)
        if f is not None:
            return f(v)
        if nest > MAX_NEST:
            cut[0] = True
            return '...'
        f = containers.get(t)
        if f is not None:
            return f(v, nest + 1)
        return r_other(v, t, nest + 1)

    def r_other(v, t, nest):
        if _isinstance(v, type):
            return '<class ' + _type_name(v) + '>'
        if t is _FunctionType:
            return '<function ' + v.__name__ + '>'
        if t is _BuiltinFunctionType:
            if _isinstance(v.__self__, _ModuleType) or v.__self__ is None:
                return '<built-in function ' + v.__name__ + '>'
            return '<built-in method ' + v.__name__ + '>'
        if t is _MethodType:
            f = v.__func__
            if _type(f) is _FunctionType:
                return '<bound method ' + f.__name__ + '>'
            return '<bound method>'
        if t is _ModuleType:
            name = _dict_get(_mod_dict(v), '__name__')
            return '<module ' + (name if _type(name) is str else '?') + '>'
        if t is _GeneratorType:
            return '<generator ' + v.__name__ + '>'
        if t is _CoroutineType:
            return '<coroutine ' + v.__name__ + '>'
        if t is _AsyncGenType:
            return '<async_generator ' + v.__name__ + '>'
        owner = repr_owner(t)
        f = containers.get(owner)
        if f is not None:
            return f(v, nest)
        f = atoms.get(owner)
        if f is not None and owner is not bool and owner is not _NoneType:
            return f(v)
        if owner is bytearray:
            return r_bytearray(v)
        if owner is BaseException:
            return r_exception(v, t, nest)
        od = _type_dict(owner)
        fields = _mp_get(od, '_fields')
        if (_type(fields) is tuple and _isinstance(v, tuple)
                and not is_program_function(_mp_get(od, '__repr__'))):
            return r_namedtuple(v, t, fields, nest)
        special = r_stdlib(v, t, owner, nest)
        if special is not None:
            return special
        if owner is object or is_heap_type(owner):
            # A class with its own (or a generated) __repr__: show what it holds instead.
            base = r_base(v, nest)
            if base is not None or has_attrs(t):
                return r_struct(v, t, nest, base)
        return '<' + _type_name(t) + ' object>'

    def r_base(v, nest):
        """The builtin part of an instance of a subclass of a builtin type, else None."""
        for b in (list, tuple, dict, set, frozenset):
            if _isinstance(v, b):
                return containers[b](v, nest)
        for b in (int, float, str, bytes, complex):
            if _isinstance(v, b):
                return atoms[b](v)
        if _isinstance(v, bytearray):
            return r_bytearray(v)
        return None

    def r_exception(v, t, nest):
        args = _exc_args(v)
        name = _type_name(t)
        if _len(args) == 1:
            return name + '(' + r(args[0], nest) + ')'
        return name + r_tuple(args, nest)

    def r_struct(v, t, nest, base=None):
        """Name(attr=value, ...) from the instance's real dict and slots, after `base`, the
        builtin part of a subclass of a builtin type."""
        name = _type_name(t)
        if base is None:
            return walk(_id(v), instance_attrs(v, t), show_field, name + '(', ')', nest, _len(name))
        return walk(_id(v), instance_attrs(v, t), show_field, name + '(', ')', nest,
                    _len(name) + _len(base), [base])

    def r_namedtuple(v, t, fields, nest):
        name = _type_name(t)
        return walk(_id(v), zip(fields, _tuple_iter(v)), show_field, name + '(', ')', nest, _len(name))

    def r_stdlib(v, t, owner, nest):
        """Known standard-library containers, walked like their own repr does."""
        if owner is stdlib_class('collections', 'OrderedDict'):
            name = _type_name(t)
            if _len(v) == 0:
                return name + '()'
            return walk(_id(v), _dict_items(v), show_item, name + '({', '})', nest)
        if owner is stdlib_class('collections', 'defaultdict'):
            fac = v.default_factory
            if _isinstance(fac, type):
                fs = type.__repr__(fac)
            elif fac is None:
                fs = 'None'
            else:
                fs = r(fac, nest)
            return walk(_id(v), _dict_items(v), show_item, _type_name(t) + '(' + fs + ', {', '})', nest)
        if owner is stdlib_class('collections', 'Counter'):
            name = _type_name(t)
            if _len(v) == 0:
                return name + '()'
            items = list(_dict_items(v))
            if all(_type(c) is int for _, c in items):
                items.sort(key=lambda kv: kv[1], reverse=True)
            return walk(_id(v), items, show_item, name + '({', '})', nest)
        if owner is stdlib_class('collections', 'deque'):
            inner = walk(_id(v), iter(v), r, '[', ']', nest)
            ml = v.maxlen
            return _type_name(t) + '(' + inner + (')' if ml is None else ', maxlen=' + _int_repr(ml) + ')')
        if owner in (stdlib_class('enum', 'Enum'), stdlib_class('enum', 'Flag')):
            d = instance_attrs(v, t)
            dd = dict(d)
            name = dd.get('_name_')
            if _type(name) is str:
                return '<' + _type_name(t) + '.' + name + ': ' + r(dd.get('_value_'), nest) + '>'
            return None
        for mod, cls in STDLIB_REPR_CLASSES:
            if owner is stdlib_class(mod, cls):
                return _mp_get(_type_dict(owner), '__repr__')(v)
        for cls in STDLIB_NAIVE_CLASSES:
            if owner is stdlib_class('datetime', cls) and v.tzinfo is None:
                return _mp_get(_type_dict(owner), '__repr__')(v)
        vname = DICT_VIEW_NAMES.get(t)
        if vname is not None:
            return walk(_id(v), iter(v), r, vname + '([', '])', nest)
        return None

    def needs_id(v, t):
        """Mutable containers and user objects carry an id; values and tags do not."""
        if t in MUTABLE_TYPES:
            return True
        if t in atoms or t in containers or t in TAG_TYPES or _isinstance(v, type):
            return False
        if _isinstance(v, (list, dict, set, bytearray)):
            return True
        if _isinstance(v, IMMUTABLE_BASES):
            return False
        deque = stdlib_class('collections', 'deque')
        return (deque is not None and _isinstance(v, deque)) or has_attrs(t)

    def obj_id(v):
        k = _id(v)
        n = ids.get(k)
        if n is None:
            keep.append(v)
            n = ids[k] = _len(keep)
        return n

    def text(v):
        """The repr of v, cut at limit."""
        cut[0] = False
        s = r(v)
        if cut[0] or _len(s) > limit:
            s = s[:limit] + TRUNCATION_MARKER
        return s

    def encode(v):
        """The Value for v: repr (cut at limit), type name, id for mutable containers/objects."""
        s = text(v)
        t = _type(v)
        out = {'repr': s, 'type': _type_name(t)}
        if needs_id(v, t):
            out['id'] = obj_id(v)
        return out

    # JSON of the names of builtin types, which cannot be renamed (a class can be).
    type_json = {t: _esc(_type_name(t)) for t in (*atoms, *containers, *TAG_TYPES)}

    def encode_json(v):
        """encode(v) as dumps() writes it; steps are kept as JSON text, which spares the final
        dumps most of its work (encodings of unchanged values are reused as text)."""
        s = text(v)
        t = _type(v)
        tj = type_json.get(t)
        if tj is None:
            tj = _esc(_type_name(t))
        if needs_id(v, t):
            return '{"repr": ' + _esc(s) + ', "type": ' + tj + ', "id": ' + _int_repr(obj_id(v)) + '}'
        return '{"repr": ' + _esc(s) + ', "type": ' + tj + '}'

    def reset():
        ids.clear()
        keep.clear()
        active.clear()

    contents, unchanged = make_reuse_check(limit)
    return encode, encode_json, contents, unchanged, reset



# ---------------------------------------------------------------- exceptions

SAFE_EXCEPTION_ARGS = (int, str, float, bool, type(None), bytes)


def exc_text(e):
    """`Name: message` of an exception, without running the program's __str__ or __repr__."""
    t = _type(e)
    name = _type_name(t)
    args = _exc_args(e)
    owner = object
    for k in _type_mro(t):
        if '__str__' in _type_dict(k):
            owner = k
            break
    if _isinstance(e, SyntaxError) and _type(e.msg) is str:
        msg = e.msg
    elif not is_heap_type(owner) and all(_type(a) in SAFE_EXCEPTION_ARGS for a in args):
        msg = _type_dict(owner)['__str__'](e) if owner is not object else ''
    elif _len(args) == 1 and _type(args[0]) is str:
        msg = args[0]
    else:
        msg = ', '.join(str(a) if _type(a) is str else '<' + _type_name(_type(a)) + '>' for a in args)
    return name + ': ' + msg if msg else name


def exc_json(e):
    """The `arg` of an exception step as JSON text."""
    return '{"repr": ' + _esc(exc_text(e)) + ', "type": ' + _esc(_type_name(_type(e))) + '}'


# ---------------------------------------------------------------- the guard

BLOCKED_IMPORTS = ('js', 'pyodide_js', 'pyodide', '_pyodide', '_pyodide_core', 'ctypes', '_ctypes',
                   'micropip')
REFUSED_AUDIT_EVENTS = frozenset(('sys.settrace', 'sys.setprofile', 'gc.get_objects', 'gc.get_referrers',
                                  'gc.get_referents', 'sys.addaudithook'))
WATCHED_AUDIT_EVENTS = REFUSED_AUDIT_EVENTS | {'execwm.denied', 'object.__getattr__', 'import'}
# The sys.monitoring functions that change its state, replaced by stand-ins in the sandbox.
MONITORING_SETTERS = ('use_tool_id', 'free_tool_id', 'clear_tool_id', 'register_callback',
                      'set_events', 'set_local_events', 'restart_events')
# Stand-ins the program can see (in sys.monitoring and sys.meta_path). They are built from this
# source in a namespace of their own, not defined here (their globals would be the tracer's), and
# report through sys.audit: neither their closures nor their globals, which a program can read,
# lead to tracer state.
STAND_IN_SOURCE = ('def make_guard(fname):\n'
                   '    def guarded(*args, **kwargs):\n'
                   '        _audit("execwm.denied", "sys.monitoring." + fname)\n'
                   '    guarded.__name__ = fname\n'
                   '    return guarded\n'
                   'class ImportBlocker:\n'
                   '    @staticmethod\n'
                   '    def find_spec(name, path=None, target=None):\n'
                   '        if name.split(".")[0] in _blocked:\n'
                   '            _audit("execwm.denied", "import " + name)\n'
                   '        return None\n')


def claim_monitoring(use_settrace):
    """The sys.monitoring functions the tracer calls (taken before the guard replaces them with
    stand-ins) and the tool id it holds, as a namespace; None when tracing falls back to
    sys.settrace (native CPython 3.11, `use_settrace`, or no free tool id)."""
    mon = None if use_settrace else getattr(sys, 'monitoring', None)
    if mon is None:
        return None
    for tool in MONITORING_TOOL_IDS:
        if mon.get_tool(tool) is None:
            break
    else:
        return None
    monitoring = types.SimpleNamespace(
        module=mon, tool=tool, use_tool_id=mon.use_tool_id, get_tool=mon.get_tool,
        set_events=mon.set_events, get_events=mon.get_events, register=mon.register_callback,
        DISABLE=mon.DISABLE, events=mon.events)
    monitoring.use_tool_id(tool, MONITORING_TOOL_NAME)
    return monitoring


def install_guard(sandboxed, monitoring):
    """Installs the audit hook (and in the sandbox the sys.monitoring stand-ins and the import
    blocker). Returns (guard, hide_host_modules): guard['tamper'] names the first refused
    operation of the run, and guard['own'] > 0 while the tracer itself does an audited one."""
    guard = {'own': 0, 'tamper': None}
    tracer_file = install_guard.__code__.co_filename

    def flag(what):
        """Refuses an operation that could reach the host or blind the tracer; the run ends `crashed`."""
        if guard['tamper'] is None:
            guard['tamper'] = what
        raise RuntimeError('execwm sandbox: ' + what + ' is not allowed')

    def audit(event, args):
        # Called for every audited operation, including the sys._getframe of each traced event, so
        # the common case returns after one set lookup.
        if event not in WATCHED_AUDIT_EVENTS or guard['own']:
            return
        # Frames the program can reach by f_back end at the trampoline; the only tracer frames it
        # could see are those of a callback that raised, through a traceback's tb_frame.
        if event in REFUSED_AUDIT_EVENTS:
            flag(event)
        if event == 'execwm.denied' and args and _type(args[0]) is str:
            flag(args[0])
        if event == 'object.__getattr__' and _len(args) > 1 and args[1] == 'tb_frame':
            guard['own'] += 1
            try:
                frame = args[0].tb_frame
            finally:
                guard['own'] -= 1
            if frame.f_code.co_filename == tracer_file:
                flag('access to a tracer frame')
        if sandboxed and event == 'import' and args and _type(args[0]) is str:
            top = args[0].split('.')[0]
            if top in BLOCKED_IMPORTS:
                flag('import ' + args[0])

    stand_ins = {'__builtins__': builtins, '_audit': sys.audit, '_blocked': BLOCKED_IMPORTS}
    exec(STAND_IN_SOURCE, stand_ins)

    # The keys of sys.modules after the last scan (none of them blocked): while sys.modules holds
    # no other key, there is nothing to hide and the scan is skipped.
    clean_modules = [frozenset()]

    def hide_host_modules():
        if clean_modules[0].issuperset(sys.modules):
            return
        for name in list(sys.modules):
            if name.split('.')[0] in BLOCKED_IMPORTS:
                del sys.modules[name]
        clean_modules[0] = frozenset(sys.modules)

    if monitoring is not None and sandboxed:
        for fname in MONITORING_SETTERS:
            if hasattr(monitoring.module, fname):
                setattr(monitoring.module, fname, stand_ins['make_guard'](fname))
    sys.addaudithook(audit)
    if sandboxed:
        hide_host_modules()
        sys.meta_path.insert(0, stand_ins['ImportBlocker'])
    return guard, hide_host_modules


# ---------------------------------------------------------------- modules
#
# After each run, modules the program imported are dropped and the dicts of the modules loaded
# before it are put back, by identity; the modules checked are those the program can name, or
# all of them when it may reach any.

# Names whose presence in a program means it may reach any module (so every module is checked
# after the run, not only those it names).
DYNAMIC_NAMES = frozenset((
    'modules', '__import__', 'import_module', 'reload', 'getattr', 'setattr', 'delattr', 'vars',
    '__dict__', 'eval', 'exec', 'compile', 'globals', 'locals', '__builtins__', '__globals__',
    '__loader__', '__spec__', '__class__', '__subclasses__', '__base__', '__bases__', '__mro__',
    'f_globals', 'f_back', 'f_locals', '_getframe', 'gc', 'inspect', '__getattribute__',
    '__defaults__', '__kwdefaults__', '__self__', '__module__', 'sys', 'builtins', 'importlib',
    'pkgutil', 'runpy', 'types'))


def program_names(code):
    """Every identifier and string constant in a code object and the code nested in it."""
    names = set()
    todo = [code]
    while todo:
        c = todo.pop()
        names.update(c.co_names)
        for k in c.co_consts:
            if _type(k) is str:
                names.update(k.split('.'))
            elif _isinstance(k, types.CodeType):
                todo.append(k)
    return names


def make_module_restore():
    """(baseline, restore_modules): baseline() is the modules loaded before the first program,
    taken on its first call (the first run's begin); restore_modules(names) puts them back after
    a run."""
    index = {'modules': None}

    def take_baseline():
        """Per module: the module, a copy of its dict, its keys, its values, and the names of the
        modules it holds (reachable as its attributes)."""
        out = {}
        for name, m in _list(sys.modules.items()):
            if _type(m) is _ModuleType:
                saved = dict(_mod_dict(m))
                subs = [v for v in _dict_values(saved) if _type(v) is _ModuleType]
                out[name] = (m, saved, _list(saved), _list(_dict_values(saved)), subs)
        index['by_id'] = {_id(entry[0]): n for n, entry in out.items()}
        index['names'] = frozenset(out)
        # Dotted-name part -> the modules whose name has that part, and each module's position
        # (so that the modules a program names are checked in baseline order).
        by_part = {}
        for n in out:
            for part in _set(n.split('.')):
                by_part.setdefault(part, []).append(n)
        index['by_part'] = by_part
        index['position'] = {n: i for i, n in enumerate(out)}
        index['modules'] = out

    def baseline():
        if index['modules'] is None:
            take_baseline()
        return index['modules']

    def modules_to_check(names):
        """Baseline modules the program can name, with the modules reachable from them."""
        modules = index['modules']
        if names is None or not names.isdisjoint(DYNAMIC_NAMES):
            return modules
        by_id = index['by_id']
        by_part = index['by_part']
        named = _set()
        for part in names.intersection(by_part):
            named.update(by_part[part])
        todo = sorted(named, key=index['position'].__getitem__)
        todo.append('__main__')
        picked = {}
        while todo:
            n = todo.pop()
            entry = modules.get(n)
            if entry is None or n in picked:
                continue
            picked[n] = entry
            for sub in entry[4]:
                sn = by_id.get(_id(sub))
                if sn is not None and sn not in picked:
                    todo.append(sn)
        return picked

    def restore_modules(names):
        """Drops modules the program imported and undoes its edits to modules loaded before it.
        Returns the modules it checked, or None for all of them: when the program may reach any
        module, or imported one (whose code may have changed any other module when it ran)."""
        modules = index['modules']
        if not index['names'].issuperset(sys.modules):
            for name in list(sys.modules):
                if name not in modules:
                    del sys.modules[name]
            names = None
        checked = modules_to_check(names)
        for name, (m, saved, keys, values, _subs) in checked.items():
            if sys.modules.get(name) is not m:
                sys.modules[name] = m
            d = _mod_dict(m)
            # Identity of every key and value, compared in C (`is`, never `==`, which could run
            # the program's __eq__).
            if (_len(d) != _len(saved) or not _all(_map(_is, _dict_values(d), values))
                    or not _all(_map(_is, d, keys))):
                d.clear()
                d.update(saved)
        return None if checked is modules else checked

    return baseline, restore_modules


# ---------------------------------------------------------------- interpreter state
#
# What the restore above does not put back is detected instead. After each run (sandboxed
# only) the tracer takes a fingerprint of the process-wide state a program can change and a
# later program could observe, and compares it with the fingerprint taken after the sandbox's
# warm-up run; when they differ the trace asks for a recycle, and the pool replaces the sandbox
# by one started from the memory snapshot of a freshly loaded interpreter. Most programs change
# nothing, so the check, not the recycle, is what every program pays. The fingerprint is
# compared by identity (`is`, in C), and by value only for exact builtin scalars: it never runs
# program code.

EXACT_SCALARS = frozenset((int, float, str, bytes, bool, type(None)))
# Memo tables of the standard library (compiled patterns, codec lookups, source lines, the
# composite members of enum flags such as re.I | re.M): a program sees their contents only by
# reading the table itself, so they are put back after each run rather than counted as a change.
CACHE_NAMES = frozenset(('re._cache', 're._cache2', 'encodings._cache', 'linecache.cache'))
CACHE_ATTRIBUTES = frozenset(('_value2member_map_',))
# How many levels below a module's dict holders_of follows classes and instances.
HOLDER_DEPTH = 3


def same(a, b):
    """Whether two fingerprint values are the same: exact scalars by value, tuples item by
    item, anything else by identity."""
    ta = _type(a)
    if ta is not _type(b):
        return False
    if ta in EXACT_SCALARS:
        return a == b
    if ta is _tuple:
        # Mostly the very same objects: checked in C first.
        return _len(a) == _len(b) and (_all(_map(_is, a, b)) or _all(_map(same, a, b)))
    return a is b


def codec_registries(guard):
    """The interpreter's codec search functions and error handlers: a list and a dict that no
    module holds. Found once, as the only list holding a search function registered for the
    purpose (and unregistered at once) and the only dict holding the 'strict' handler under
    that name, and read in place afterwards."""
    def probe(name):
        return None
    strict = codecs.lookup_error('strict')
    guard['own'] += 1
    codecs.register(probe)
    try:
        search = [o for o in gc.get_referrers(probe) if _type(o) is list]
        errors = [o for o in gc.get_referrers(strict) if _type(o) is dict and _dict_get(o, 'strict') is strict]
    finally:
        codecs.unregister(probe)
        guard['own'] -= 1
    return (search[0] if _len(search) == 1 else None), (errors[0] if _len(errors) == 1 else None)


def module_state():
    """(module, what, read) for state kept in C by a module that a program reaches only through
    that module: read when the module is among those checked after the run."""
    out = []
    signal = sys.modules.get('_signal')
    if signal is not None and hasattr(signal, 'valid_signals'):
        numbers = sorted(signal.valid_signals())
        getsignal = signal.getsignal
        out.append(('signal', 'signal handlers', lambda: _tuple(_map(getsignal, numbers))))
        out.append(('_signal', 'signal handlers', lambda: _tuple(_map(getsignal, numbers))))
    locale = sys.modules.get('_locale')
    if locale is not None and hasattr(locale, 'setlocale'):
        setlocale = locale.setlocale
        everything = locale.LC_ALL
        out.append(('locale', 'locale.setlocale', lambda: setlocale(everything, None)))
        out.append(('_locale', 'locale.setlocale', lambda: setlocale(everything, None)))
    return out


def holders_of(d, seen, out, where, depth, found):
    """Appends (where, object) for the mutable objects reachable from the values of `d` that
    a program can change in place: exact lists, dicts and sets, the dicts of classes made by
    class statements, and the dicts of instances of such classes, followed HOLDER_DEPTH levels
    deep (`warnings.filters`, `os.environ._data`, `json.JSONEncoder`). What the walk finds
    besides goes to `found`: C counters, lru_cache wrappers, and classes that are ABCs."""
    for key, v in _list(_dict_items(d) if _type(d) is dict else _mp_items(d)):
        t = _type(v)
        if t is _ModuleType:
            continue
        k = _id(v)
        if k in seen:
            continue
        inner = None
        owner = getattr(v, '__self__', None) if t is _MethodWrapper or t is _BuiltinFunctionType else None
        if t is _count or _type(owner) is _count:
            # A counter in C (threading numbers its threads with one): compared by its repr.
            found['counters'].append((where + '.' + str(key), v if t is _count else owner))
        elif t is _LruWrapper:
            found['memo_functions'].append(v)
        elif t is list or t is set or t is dict:
            seen.add(k)
            out.append((where + '.' + str(key), v))
            inner = v if t is dict else None
        elif _isinstance(v, type):
            if is_heap_type(v):
                seen.add(k)
                inner = _type_dict(v)
                out.append((where + '.' + str(key), inner))
                if '_abc_impl' in inner:
                    found['abc_owners'][k] = v
        elif is_heap_type(t):
            desc = None
            for klass in _type_mro(t):
                desc = _mp_get(_type_dict(klass), '__dict__')
                if desc is not None:
                    break
            if _type(desc) is _GetSet:
                inner = desc.__get__(v, t)
                if _type(inner) is dict and _id(inner) not in seen:
                    seen.add(k)
                    seen.add(_id(inner))
                    out.append((where + '.' + str(key), inner))
                else:
                    inner = None
        if inner is not None and depth < HOLDER_DEPTH:
            holders_of(inner, seen, out, where + '.' + str(key), depth + 1, found)


def views_of(obj):
    """Live iterables over what a holder holds: a list or set itself, a dict's keys and values."""
    t = _type(obj)
    if t is dict:
        return (_dict_keys(obj), _dict_values(obj))
    if t is _MappingProxy:
        return (_mp_keys(obj), _mp_values(obj))
    return (obj,)


def pack(holders):
    """The holders as one check done in C: their live views, each view's length, and every
    item in order."""
    views = _list(_chain.from_iterable(views_of(obj) for _, obj in holders))
    return holders, views, _tuple(_map(_len, views)), _tuple(_chain.from_iterable(views))


def packed_unchanged(packed):
    _, views, lens, items = packed
    return _tuple(_map(_len, views)) == lens and _all(_map(_is, _chain.from_iterable(views), items))


def first_change(packed):
    """The name of the first holder of a pack that differs from what the pack recorded."""
    holders, views, lens, items = packed
    v = 0
    start = 0
    for where, obj in holders:
        n = _len(views_of(obj))
        size = sum(lens[v:v + n])
        mine = (holders[:0], views[v:v + n], lens[v:v + n], items[start:start + size])
        if not packed_unchanged(mine):
            return where
        v += n
        start += size
    return 'module state'


def make_state_check(guard, module_baseline, monitoring):
    """(state_change, has_baseline): state_change(checked) is what differs from the state after
    the warm-up run (its first call takes that baseline), has_baseline() whether it is taken."""
    state = {'codecs': (None, None), 'abcs': (), 'abc_token': None, 'abc_live': None, 'base': None,
             'caches': (), 'caches_per': {}, 'cache_dicts': (), 'cache_lens': (), 'gated': ()}
    found = {'counters': [], 'memo_functions': [], 'abc_owners': {}}

    def live_registrations():
        """Per baseline ABC, the ids of the live classes registered with it. Importing a module
        registers its classes (decimal registers Decimal with numbers.Number); once the module is
        dropped after the run they die, and their registrations are left as dead weak references,
        which no program can observe."""
        out = []
        for c in state['abcs']:
            live = _frozenset(_id(k) for k in [ref() for ref in _abc_dump(c)[0]] if k is not None)
            out.append(live)
        return _tuple(out)

    def abc_state():
        token = _abc_token()
        if token != state['abc_token']:
            if live_registrations() != state['abc_live']:
                return token
            state['abc_token'] = token
        return None

    def process_state():
        """(what, value) pairs of the state that lives in the interpreter or the C library rather
        than in a module dict: cheap enough to read after every run."""
        out = [
            ('gc.callbacks', _tuple(_gc_callbacks)),
            ('gc settings', (gc.isenabled(), gc.get_threshold(), gc.get_debug())),
            ('os.environ', _tuple(_chain(_environ_data, _dict_values(_environ_data)))),
            ('sys.setswitchinterval', sys.getswitchinterval()),
            ('sys.set_asyncgen_hooks', _tuple(sys.get_asyncgen_hooks())),
            ('sys.set_coroutine_origin_tracking_depth', sys.get_coroutine_origin_tracking_depth()),
            ('sys.gettrace/getprofile', (sys.gettrace(), sys.getprofile())),
            ('ABC registrations', abc_state()),
            ('context variables', _tuple(_chain.from_iterable(_copy_context().items()))),
        ]
        if _atexit_count is not None:
            out.append(('atexit callbacks', _atexit_count()))
        search, errors = state['codecs']
        if search is not None:
            out.append(('codec search functions', _tuple(search)))
        if errors is not None:
            out.append(('codec error handlers', _tuple(_chain(errors, _dict_values(errors)))))
        if monitoring is not None:
            out.append(('sys.monitoring tools', _tuple(_map(monitoring.get_tool, ALL_MONITORING_TOOLS))))
        return out

    def take_baseline():
        """Packs the holders of every baseline module (each object once in `all`), finds the
        codec tables and the ABCs, and records the process state."""
        skip = {_id(sys.modules), _id(sys.path_importer_cache)}
        per = {}
        everything = []
        seen_all = set()
        caches = {}
        for name, entry in module_baseline().items():
            out = []
            holders_of(entry[1], set(skip), out, name, 0, found)
            mine = []
            for h in out:
                if h[0] in CACHE_NAMES or h[0].rpartition('.')[2] in CACHE_ATTRIBUTES:
                    if _type(h[1]) is dict:
                        caches.setdefault(name, []).append((h[1], dict(h[1])))
                    continue
                mine.append(h)
                if _id(h[1]) not in seen_all:
                    seen_all.add(_id(h[1]))
                    everything.append(h)
            per[name] = pack(mine)
        state['per'] = per
        state['all'] = pack(everything)
        state['caches_per'] = caches
        state['caches'] = _list(_chain.from_iterable(caches.values()))
        state['cache_dicts'] = [obj for obj, _ in state['caches']]
        state['cache_lens'] = _tuple(_len(saved) for _, saved in state['caches'])
        state['codecs'] = codec_registries(guard)
        state['abcs'] = _tuple(found['abc_owners'].values())
        state['abc_token'] = _abc_token()
        state['abc_live'] = live_registrations()
        state['base'] = process_state()
        state['gated'] = [(mod, what, read, read()) for mod, what, read in module_state()]
        state['counters'] = [(where, c, _count_repr(c)) for where, c in found['counters']]

    def put_back_caches(checked):
        """Empties the functools.lru_cache tables (their statistics too: the state a fresh sandbox
        has, as the baseline is taken after the same clearing) and puts back the memo dicts that
        grew or shrank, and, of the modules in `checked` (None: all), those with any other change.
        The standard library only adds entries; changing one in place takes naming its module."""
        for f in found['memo_functions']:
            _lru_clear(f)
        if _tuple(_map(_len, state['cache_dicts'])) != state['cache_lens']:
            for obj, saved in state['caches']:
                if _len(obj) != _len(saved):
                    obj.clear()
                    obj.update(saved)
        if checked is None:
            todo = state['caches']
        else:
            per = state['caches_per']
            todo = _chain.from_iterable(per[n] for n in checked if n in per)
        for obj, saved in todo:
            if not _all(_map(_is, _chain(obj, _dict_values(obj)), _chain(saved, _dict_values(saved)))):
                obj.clear()
                obj.update(saved)

    def state_change(checked):
        """What differs from the state after the warm-up run (a short description), or None.
        `checked`: the modules restore_modules checked (None: all).
        The first call, after the warm-up run, takes the baseline; it also moves every object
        alive then out of the garbage collector's way (gc.freeze), so that collecting after each
        run costs only what the run left."""
        random.seed(0)
        gc.collect()
        if state['base'] is None:
            take_baseline()
            put_back_caches(None)
            gc.freeze()
            # Collecting once more leaves the collector as every later run leaves it (a collection
            # with everything older frozen): the first run after this one then collects as they do.
            gc.collect()
            return None
        if checked is None:
            packs = (state['all'],)
        else:
            per = state['per']
            packs = [per[n] for n in checked if n in per]
        put_back_caches(checked)
        for (what, value), (_, base) in zip(process_state(), state['base']):
            if not same(value, base):
                return what
        for where, c, text in state['counters']:
            if _count_repr(c) != text:
                return where
        for mod, what, read, base in state['gated']:
            if (checked is None or mod in checked) and not same(read(), base):
                return what
        for packed in packs:
            if not packed_unchanged(packed):
                return first_change(packed)
        return None

    def has_baseline():
        return state['base'] is not None

    return state_change, has_baseline


# ---------------------------------------------------------------- trampolines
#
# The driver calls begin(), then the trampolines run_module() and, for a function program,
# run_entry(), with on()/off() around the traced part, then finish(). Keeping the driver outside
# Python (in the sandbox) means no tracer frame sits below the program's frames, so walking
# f_back from the program reaches nothing but a trampoline. Every call is argument-free and
# returns a bool or an int, so each costs the sandbox one crossing and no proxy.
#
# A trampoline's globals and builtins are reachable from the program (a frame's f_globals and
# f_builtins), so each trampoline is built from source in its own namespace (not as a closure
# here, whose globals would be the tracer's) and has its own pair, refilled by begin(): a name
# the program plants there (`eval`, say) dies with its run, and the module body cannot reach the
# entry's. What the trampoline reads (code, g) is read before the program runs, and its outcome
# `out` is written after, so a program cannot forge either.

TRAMPOLINE_SOURCE = ('def call():\n'
                     '    global out\n'
                     '    try:\n'
                     '        out = (True, eval(code, g))\n'
                     '    except BaseException as e:\n'
                     '        out = (False, e)\n'
                     '    return out[0]\n')
TRAMPOLINE_BUILTINS = {'eval': eval, 'BaseException': BaseException}


def make_trampoline():
    b = dict(TRAMPOLINE_BUILTINS)
    ns = {'__builtins__': b}
    exec(TRAMPOLINE_SOURCE, ns)
    return ns.pop('call'), ns, b


def make_trampolines():
    """(run_module, run_entry, fill, outcome, empty): the two trampolines; fill(code, entry_code,
    g) readies them for a run, outcome(of_module) is the (ok, value) one of them wrote, empty()
    drops what the last run left in them (the program's globals, its planted names)."""
    run_module, module_ns, module_builtins = make_trampoline()
    run_entry, entry_ns, entry_builtins = make_trampoline()

    def fill(code, entry_code, g):
        for ns, b, c in ((module_ns, module_builtins, code), (entry_ns, entry_builtins, entry_code)):
            b.clear()
            b.update(TRAMPOLINE_BUILTINS)
            ns.clear()
            ns['__builtins__'] = b
            ns['code'] = c
            ns['g'] = g

    def outcome(of_module):
        return (module_ns if of_module else entry_ns).get('out')

    def empty():
        module_ns.clear()
        entry_ns.clear()
        module_builtins.clear()
        entry_builtins.clear()

    return run_module, run_entry, fill, outcome, empty


# ---------------------------------------------------------------- one run

# A step as dumps() writes it, filled in C for all steps at the end of a run (%s of an int is
# its repr). Building each step's text, or a dict for dumps(), while the program runs costs
# more than the rest of recording it.
STEP_JSON = ('{"event": %s, "line": %s, "func": %s, "depth": %s, "locals": %s, "arg": %s, '
             '"stdout": %s}')
EV_CALL = '"call"'
EV_LINE = '"line"'
EV_RETURN = '"return"'
EV_EXCEPTION = '"exception"'
NULL = 'null'


def save_interpreter():
    """What of sys a program can change and put_back_interpreter() restores: the streams, the
    recursion and int-digit limits, the import paths and hooks, the sys hooks."""
    return ((sys.stdout, sys.stderr, sys.stdin, sys.__stdout__, sys.__stderr__),
            sys.getrecursionlimit(),
            _int_max_digits_get() if _int_max_digits_get else None,
            [(x, list(x)) for x in (sys.path, sys.meta_path, sys.path_hooks)],
            (sys.excepthook, sys.displayhook, sys.breakpointhook, sys.unraisablehook))


def put_back_interpreter(saved, restore_modules, names):
    """Restores what save_interpreter() saved, and the modules (see restore_modules, which gets
    `names`); returns the modules restore_modules checked."""
    streams, recursion, digits, sys_lists, hooks = saved
    (sys.stdout, sys.stderr, sys.stdin, sys.__stdout__, sys.__stderr__) = streams
    sys.setrecursionlimit(recursion)
    if _int_max_digits_set:
        _int_max_digits_set(digits)
    checked = restore_modules(names)
    for lst, items in sys_lists:
        lst[:] = items
    sys.path_importer_cache.clear()
    (sys.excepthook, sys.displayhook, sys.breakpointhook, sys.unraisablehook) = hooks
    return checked


def make_recorder(max_steps, max_out, encoder, name_json):
    """The record of one run, as a namespace: st (status, message, call depth, stdout position and
    bytes, memory error, tampering, whether tracing is on), steps (each a tuple of STEP_JSON's
    values), out_buf (the program's stdout), fcache (per frame, the reusable text of its locals),
    snapshot(frame) and record(event, code, line, depth, loc, arg)."""
    _encode, encode_json, contents, unchanged, _reset = encoder
    steps = []
    st = {'status': None, 'message': None, 'depth': 0, 'out_pos': 0, 'out_bytes': 0,
          'memory_error': False, 'tamper': None, 'traced': False}
    fcache = {}
    out_buf = io.StringIO()

    def stop(status, message):
        if st['status'] is None:
            st['status'] = status
            st['message'] = message
        raise _Stop()

    def take_stdout():
        pos = out_buf.tell()
        text = out_buf.getvalue()[st['out_pos']:pos]
        st['out_pos'] = pos
        raw = text.encode('utf-8', 'surrogatepass')
        room = max_out - st['out_bytes']
        st['out_bytes'] += _len(raw)
        if _len(raw) > room:
            # The step keeps only what fits in the stdout budget, like the trace's stdout.
            text = raw[:max(room, 0)].decode('utf-8', 'ignore')
        return text

    def snapshot(frame):
        """The JSON of the frame's visible locals. Per variable, the `"name": value` text is
        reused while the variable holds the same object and that object cannot have changed:
        it is immutable (a scalar, a tuple of scalars...), or a short container of scalars
        still holding the same items. The cache keeps the objects alive, so their ids cannot
        be reused by others."""
        cache = fcache.get(frame)
        if cache is None:
            cache = fcache[frame] = {}
        parts = []
        for name, v in frame.f_locals.items():
            c = cache.get(name)
            if c is not None and c[0] is v and (c[2] is None or unchanged(v, c[2])):
                parts.append(c[1])
                continue
            key = name_json.get(name)
            if key is None:
                hidden = name[:1] == '.' or (name[:2] == '__' and name[-2:] == '__')
                # Hidden names (dunders such as __builtins__, the `.0` of comprehensions) map to ''.
                key = name_json[name] = '' if hidden else _esc(name) + ': '
            if not key:
                continue
            part = key + encode_json(v)
            t = _type(v)
            if t in IMMUTABLE_TYPES or (t is tuple and _set(_map(_type, v)) <= SCALAR_TYPES):
                cache[name] = (v, part, None)
            else:
                items = contents(v, t)
                if items is not None:
                    cache[name] = (v, part, items)
                elif c is not None:
                    del cache[name]
            parts.append(part)
        return '{' + ', '.join(parts) + '}'

    def record(event, code, line, depth, loc, arg):
        """Appends a step as the values of STEP_JSON: `event`, `loc` and `arg` are JSON text
        ('null' for none), the rest is made JSON here."""
        if _len(steps) >= max_steps:
            stop('step_limit', 'step limit of ' + str(max_steps) + ' events reached')
        text = _esc(take_stdout()) if out_buf.tell() != st['out_pos'] else '""'
        steps.append((event, 'null' if line is None else line, _esc(code.co_name), depth, loc, arg, text))
        if st['out_bytes'] > max_out:
            stop('output_limit', 'stdout limit of ' + str(max_out) + ' bytes exceeded')

    return types.SimpleNamespace(st=st, steps=steps, out_buf=out_buf, fcache=fcache,
                                 snapshot=snapshot, record=record)


def make_monitoring_callbacks(rec, encode_json, monitoring):
    """The sys.monitoring callbacks of one run (CPython 3.12+), keyed by event."""
    st = rec.st
    fcache = rec.fcache
    record = rec.record
    snapshot = rec.snapshot
    DISABLE = monitoring.DISABLE
    EV = monitoring.events
    line_of = {}

    def lines_of(code):
        lines = line_of.get(code)
        if lines is None:
            lines = line_of[code] = {}
            for start, end, ln in code.co_lines():
                if ln is not None:
                    for off in range(start, end, 2):
                        lines[off] = ln
        return lines

    def enter(code, frame):
        if st['status'] is not None:
            raise _Stop()
        d = st['depth']
        st['depth'] = d + 1
        record(EV_CALL, code, frame.f_lineno or code.co_firstlineno, d, snapshot(frame), NULL)

    def on_start(code, offset):
        if code.co_filename != PROGRAM_FILE:
            return DISABLE
        enter(code, _getframe(1))

    def on_throw(code, offset, exc):
        if code.co_filename == PROGRAM_FILE:
            enter(code, _getframe(1))

    def on_line(code, line):
        if code.co_filename != PROGRAM_FILE:
            return DISABLE
        if st['status'] is not None:
            raise _Stop()
        record(EV_LINE, code, line, st['depth'] - 1, snapshot(_getframe(1)), NULL)

    def on_jump(code, src, dest):
        if dest > src or code.co_filename != PROGRAM_FILE:
            return DISABLE
        lines = lines_of(code)
        ln = lines.get(dest)
        if ln is None or ln != lines.get(src):
            return DISABLE
        if st['status'] is not None:
            raise _Stop()
        record(EV_LINE, code, ln, st['depth'] - 1, snapshot(_getframe(1)), NULL)

    def on_return(code, offset, retval):
        if code.co_filename != PROGRAM_FILE:
            return DISABLE
        if st['status'] is not None:
            return
        st['depth'] -= 1
        frame = _getframe(1)
        fcache.pop(frame, None)
        record(EV_RETURN, code, frame.f_lineno, st['depth'], NULL, encode_json(retval))

    def on_yield(code, offset, retval):
        if code.co_filename != PROGRAM_FILE:
            return DISABLE
        if st['status'] is not None:
            return
        st['depth'] -= 1
        record(EV_RETURN, code, _getframe(1).f_lineno, st['depth'], NULL, encode_json(retval))

    def on_unwind(code, offset, exc):
        if code.co_filename != PROGRAM_FILE:
            return
        if _isinstance(exc, MemoryError):
            st['memory_error'] = True
        if st['status'] is not None:
            return
        st['depth'] -= 1
        frame = _getframe(1)
        fcache.pop(frame, None)
        record(EV_RETURN, code, frame.f_lineno, st['depth'], NULL, NULL)

    def on_raise(code, offset, exc):
        if code.co_filename != PROGRAM_FILE:
            return
        if _isinstance(exc, MemoryError):
            st['memory_error'] = True
        if st['status'] is not None or _type(exc) is _Stop:
            return
        record(EV_EXCEPTION, code, _getframe(1).f_lineno, st['depth'] - 1, NULL, exc_json(exc))

    return {
        EV.PY_START: on_start, EV.PY_RESUME: on_start, EV.PY_THROW: on_throw,
        EV.LINE: on_line, EV.JUMP: on_jump, EV.PY_RETURN: on_return,
        EV.PY_YIELD: on_yield, EV.PY_UNWIND: on_unwind, EV.RAISE: on_raise,
        EV.STOP_ITERATION: on_raise,
    }


def make_settrace_callback(rec, encode_json):
    """The sys.settrace function of one run (native CPython 3.11, differential tests)."""
    st = rec.st
    fcache = rec.fcache
    record = rec.record
    snapshot = rec.snapshot
    unwinding = set()

    def tracefunc(frame, event, arg):
        code = frame.f_code
        if code.co_filename != PROGRAM_FILE:
            return None
        if st['status'] is not None:
            raise _Stop()
        if event == 'line':
            unwinding.discard(frame)
            record(EV_LINE, code, frame.f_lineno, st['depth'] - 1, snapshot(frame), NULL)
        elif event == 'call':
            d = st['depth']
            st['depth'] = d + 1
            record(EV_CALL, code, frame.f_lineno or code.co_firstlineno, d, snapshot(frame), NULL)
        elif event == 'return':
            st['depth'] -= 1
            fcache.pop(frame, None)
            if frame in unwinding:
                unwinding.discard(frame)
                record(EV_RETURN, code, frame.f_lineno, st['depth'], NULL, NULL)
            else:
                record(EV_RETURN, code, frame.f_lineno, st['depth'], NULL, encode_json(arg))
        elif event == 'exception':
            exc = arg[1]
            if _isinstance(exc, MemoryError):
                st['memory_error'] = True
            if _type(exc) is not _Stop:
                unwinding.add(frame)
                record(EV_EXCEPTION, code, frame.f_lineno, st['depth'] - 1, NULL, exc_json(exc))
        return tracefunc

    return tracefunc


def make_switch(st, monitoring, callbacks, tracefunc, guard):
    """(tracing_on, tracing_off) for one run: with sys.monitoring, the callbacks and their events
    on the tracer's tool; otherwise tracefunc through sys.settrace. tracing_off records in
    st['tamper'] any change the program made to either."""
    all_events = 0
    for ev in callbacks:
        all_events |= ev

    def tracing_on():
        st['traced'] = True
        if monitoring is not None:
            for ev, cb in callbacks.items():
                monitoring.register(monitoring.tool, ev, cb)
            monitoring.set_events(monitoring.tool, all_events)
        else:
            guard['own'] += 1
            try:
                sys.settrace(tracefunc)
            finally:
                guard['own'] -= 1

    def tracing_off():
        """Stops tracing and records any tampering with it."""
        if not st['traced']:
            return
        st['traced'] = False
        problem = None
        if monitoring is not None:
            tool = monitoring.tool
            if monitoring.get_tool(tool) != MONITORING_TOOL_NAME:
                problem = 'the monitoring tool was freed'
                monitoring.use_tool_id(tool, MONITORING_TOOL_NAME)
            elif monitoring.get_events(tool) != all_events:
                problem = 'monitoring events were changed'
            for ev, cb in callbacks.items():
                if monitoring.register(tool, ev, None) is not cb and problem is None:
                    problem = 'a monitoring callback was replaced'
            monitoring.set_events(tool, 0)
        else:
            guard['own'] += 1
            try:
                current = sys.gettrace()
                sys.settrace(None)
            finally:
                guard['own'] -= 1
            if current is not tracefunc:
                problem = 'sys.settrace was changed'
        if problem is not None and st['tamper'] is None:
            st['tamper'] = problem

    return tracing_on, tracing_off


def new_run(req, max_steps, max_out, max_chars, tracer):
    """Sets up the run of one program: {'st', 'redirect', 'on', 'off', 'finish'}, where
    finish(outcome) puts the interpreter back and returns (the trace's JSON up to the value of
    "recycle", whether memory ran out, the modules checked). `tracer` holds what runs share:
    monitoring, guard, restore_modules, encoders, name_json and names (the program's, set by
    begin)."""
    encoder = tracer.encoders.get(max_chars)
    if encoder is None:
        encoder = tracer.encoders[max_chars] = make_encoder(max_chars)
    encode, encode_json, _contents, _unchanged, reset_encoder = encoder
    reset_encoder()
    rec = make_recorder(max_steps, max_out, encoder, tracer.name_json)
    st = rec.st
    err_buf = io.StringIO()
    saved = save_interpreter()
    monitoring = tracer.monitoring
    guard = tracer.guard
    if monitoring is not None:
        callbacks = make_monitoring_callbacks(rec, encode_json, monitoring)
        tracefunc = None
    else:
        callbacks = {}
        tracefunc = make_settrace_callback(rec, encode_json)
    tracing_on, tracing_off = make_switch(st, monitoring, callbacks, tracefunc, guard)

    def redirect():
        sys.stdout = sys.__stdout__ = rec.out_buf
        sys.stderr = sys.__stderr__ = err_buf
        sys.stdin = io.StringIO()

    def finish(outcome):
        """Restores the interpreter; the JSON of the trace from the trampoline's (ok, value)."""
        tracing_off()
        checked_modules = put_back_interpreter(saved, tracer.restore_modules, tracer.names.get('names'))
        rec.fcache.clear()
        result = None
        if outcome is not None and st['status'] is None:
            ok, value = outcome
            if ok:
                if req.get('entry') is not None:
                    result = encode(value)
            elif _isinstance(value, MemoryError):
                st['memory_error'] = True
            elif _type(value) is not _Stop:
                st['status'] = 'exception'
                st['message'] = exc_text(value)
        tamper = guard['tamper'] or st['tamper']
        if tamper is not None:
            st['status'] = 'crashed'
            st['message'] = 'sandbox: ' + tamper + ' is not allowed (tracer tampering or host access)'
        elif st['memory_error'] and st['status'] in (None, 'exception'):
            st['status'] = 'memory_limit'
            st['message'] = 'MemoryError: the program ran out of memory'
        stdout = rec.out_buf.getvalue()
        raw = stdout.encode('utf-8', 'surrogatepass')
        if _len(raw) > max_out:
            stdout = raw[:max_out].decode('utf-8', 'ignore')
            if st['status'] in (None, 'exception'):
                st['status'] = 'output_limit'
                st['message'] = 'stdout limit of ' + str(max_out) + ' bytes exceeded'
        status = st['status'] or 'ok'
        head = dumps({
            'id': req.get('id'),
            'source': req['source'],
            'entry': req.get('entry'),
            'status': status,
            'message': st['message'],
            'result': result if status == 'ok' else None,
        })
        # The encoder lets go of the objects it numbered: the program's objects die with its run.
        reset_encoder()
        # The steps are JSON text already: the trace is written around them. The caller adds the
        # value of "recycle" once the run's objects are gone.
        body = ', '.join(_map(STEP_JSON.__mod__, rec.steps))
        text = head[:-1] + ', "steps": [' + body + '], "stdout": ' + _esc(stdout) + ', "recycle": '
        return text, st['memory_error'] or status == 'memory_limit', checked_modules

    return {'st': st, 'on': tracing_on, 'off': tracing_off, 'finish': finish, 'redirect': redirect}


# ---------------------------------------------------------------- the driver's entry points

def _build(sandboxed, use_settrace=False):
    """Sets the tracer up in this interpreter (in the sandbox: with the guard on) and returns the
    driver's entry points: begin, run_module, run_entry, on, off, finish, finish_utf8, and
    run_json, the whole driver in Python for native runs."""
    monitoring = claim_monitoring(use_settrace)
    guard, hide_host_modules = install_guard(sandboxed, monitoring)
    module_baseline, restore_modules = make_module_restore()
    state_change, has_state_baseline = make_state_check(guard, module_baseline, monitoring)
    run_module, run_entry, fill_trampolines, trampoline_outcome, empty_trampolines = make_trampolines()
    tracer = types.SimpleNamespace(
        monitoring=monitoring, guard=guard, restore_modules=restore_modules,
        # Per maxValueChars: the functions of make_encoder, reused by every run with that limit.
        encoders={},
        # Per local name: its JSON key text (`"name": `), or '' for names locals leave out
        # (dunders such as __builtins__, hidden `.0`).
        name_json={},
        # The names the current program uses (program_names), for restore_modules.
        names={})
    cur = {}

    def begin(line):
        """Starts a run: 1 for a script (trace run_module), 2 for a function program (run_module
        untraced, then trace run_entry if it returned True), 0 when there is nothing to run."""
        req = json.loads(line)
        limits = req['limits']
        r = new_run(req, int(limits['maxSteps']), int(limits['maxStdoutBytes']),
                    int(limits['maxValueChars']), tracer)
        cur.clear()
        cur.update(r)
        tracer.names['names'] = None
        module_baseline()
        guard['tamper'] = None
        if sandboxed:
            hide_host_modules()
        random.seed(0)
        try:
            # Compiler warnings (e.g. `return` in `finally`) are not the program's output.
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                code = compile(req['source'], PROGRAM_FILE, 'exec')
                entry = req.get('entry')
                entry_code = compile(entry, ENTRY_FILE, 'eval') if entry is not None else None
            names = program_names(code)
            if entry_code is not None:
                names |= program_names(entry_code)
            tracer.names['names'] = names
        except (SyntaxError, ValueError) as e:
            r['st']['status'] = 'syntax_error'
            r['st']['message'] = exc_text(e) + (' (line ' + str(e.lineno) + ')'
                                                if _isinstance(e, SyntaxError) and e.lineno else '')
            return 0
        if sandboxed and has_state_baseline():
            # The last run's garbage went at its end (state_change); a young collection now starts
            # the collector's counts where a fresh sandbox's start, so collections (and finalizers)
            # happen at the same points of the run.
            gc.collect(0)
        r['redirect']()
        fill_trampolines(code, entry_code, {'__name__': '__main__', '__builtins__': builtins, '__doc__': None})
        cur['script'] = entry_code is None
        return 1 if entry_code is None else 2

    def on():
        cur['on']()

    def off():
        cur['off']()
        # The outcome of the traced trampoline, taken before any later call could run program code.
        cur['outcome'] = trampoline_outcome(cur['script'])

    def finish():
        """The JSON of the trace. Without off() (nothing traced) the outcome is the module's:
        nothing of the program has run since its trampoline wrote it."""
        outcome = cur['outcome'] if 'outcome' in cur else trampoline_outcome(True)
        empty_trampolines()
        text, memory, checked = cur['finish'](outcome)
        # The program's objects and the run's own state go before the state is compared: their
        # finalizers run now, where the comparison sees what they do, and no garbage of this run
        # is left for the next.
        outcome = None
        cur.clear()
        # A sandbox whose memory grew to the cap, or whose state the program changed, is replaced.
        if memory:
            return text + '"memory"}'
        change = state_change(checked) if sandboxed else None
        return text + ('false}' if change is None else _esc('state: ' + change) + '}')

    def finish_utf8():
        """finish() as bytes (ASCII, so also UTF-8), which the sandbox writes out as they are:
        Pyodide's conversion of a non-ASCII str to a JS string is ~40x slower. A lone surrogate
        becomes U+FFFD, as Node's UTF-8 writer made it when such traces were sent as strings."""
        text = finish()
        if '\\ud' in text:
            text = _surrogates.sub(lone_to_fffd, text)
        return text.encode('ascii')

    def run_json(line):
        """The driver in Python, for native runs (differential tests, benchmarks)."""
        kind = begin(line)
        if kind == 1:
            on()
            run_module()
            off()
        elif kind == 2 and run_module():
            on()
            run_entry()
            off()
        return finish()

    return {'begin': begin, 'run_module': run_module, 'run_entry': run_entry, 'on': on, 'off': off,
            'finish': finish, 'finish_utf8': finish_utf8, 'run_json': run_json}


def _main():
    run_json = _build(sandboxed=False)['run_json']
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(run_json(line) + '\n')
            sys.stdout.flush()


if __name__ == '__main__':
    _main()
