#!/usr/bin/python3
"""Writes units.json: small templates, one construct each, that the C interpreter must render
exactly as jinja2 does (reference.py units). Edit here, then run: make_units.py > units.json"""
import json

units = []


def t(name, template, **variables):
    units.append({"name": name, "template": template, "vars": variables})


D = {"a": 1, "b": [1, 2.5, "x"], "c": {"d": None, "e": True}, "items": "val", "s": "str"}
L = [3, 1, 2]

# literals and str()
t("lit_str_escapes", r"""{{ 'a\nb\t\'q\' \"d\" \\ \x41\u00e9\U0001F600 \q' }}|{{ "dq 'x'" }}""")
t("lit_adjacent_strings", "{{ 'a' 'b' \"c\" }}")
t("lit_numbers", "{{ 1 }} {{ -2 }} {{ 1.5 }} {{ 1e3 }} {{ 2.5e-3 }} {{ 1_000 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ 10 / 4 }} {{ 4 / 2 }}")
t("lit_bools_none", "{{ true }} {{ True }} {{ false }} {{ False }} {{ none }} {{ None }}")
t("lit_list_dict", "{{ [1, 'a', none, true, 2.0, [ ], {'k': 'v'}] }} {{ {'a': 1, 'b': [1, 2], 3: 'x'} }} {{ (1, 'two') }} {{ (1,) }} {{ () }}")
t("str_repr_quotes", """{{ ["it's", 'say "hi"', "both ' and \\"", "nl\\n", "tab\\t", "uni é 😀", "\\x01\\x7f"] }}""")
t("render_values", "{{ x }}|{{ y }}|{{ z }}|{{ d }}|{{ l }}|{{ f }}|{{ big }}", x=True, y=None, z=1.0, d=D, l=L, f=0.000123, big=123456789012)
t("undefined_renders_empty", "[{{ nope }}][{{ d.missing }}][{{ d['missing'] }}][{{ l[10] }}]", d=D, l=L)
# arithmetic
t("arith", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ true + 1 }}")
t("arith_str_list", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [1] + [2, 3] }} {{ [0] * 3 }}")
t("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 1 ~ 2 ~ 3 }} {{ 'a' ~ 1 + 2 }} {{ 10 - 2 - 3 }} {{ not 1 == 2 }}")
t("concat_tilde", "{{ 'a' ~ none ~ true ~ 1.0 ~ nope ~ [1] }}")
t("messages_len_minus", "{{ l|length - 1 }} {{ -l|length }}", l=L)
# comparisons and logic
t("compare", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 3 > 4 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'a' != 'a' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] < [1, 3] }} {{ none == none }} {{ true == 1 }}")
t("in_operator", "{{ 'b' in 'abc' }} {{ 'z' not in 'abc' }} {{ 2 in [1, 2] }} {{ 'a' in d }} {{ 'zz' in d }} {{ 1 in nope }} {{ '' in 'x' }}", d=D)
t("and_or_values", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }} {{ none or none }} {{ [] or {} }} {{ not '' }} {{ not [0] }} {{ nope or 'dflt' }}")
t("cond_expr", "{{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 else 'no' }} [{{ 'x' if false }}] {{ 'a' if 0 else 'b' if 1 else 'c' }}")
# tests
t("is_tests", "{% for v in vals %}{{ v is defined }},{{ v is none }},{{ v is string }},{{ v is mapping }},{{ v is sequence }},{{ v is iterable }},{{ v is number }},{{ v is integer }},{{ v is float }},{{ v is boolean }},{{ v is true }},{{ v is false }};{% endfor %}",
  vals=[None, True, False, 0, 1.5, "s", [1], {"a": 1}])
t("is_tests_undefined", "{{ x is defined }} {{ x is not defined }} {{ x is undefined }} {{ x is none }} {{ x is string }} {{ x is sequence }} {{ x is iterable }} {{ x is mapping }} {{ d.a is defined }} {{ d.zz is defined }}", d=D)
t("is_tests_args", "{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 1 is eq 1 }} {{ 2 is gt 1 }} {{ 'a' is in 'abc' }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ none is sameas none }} {{ true is sameas true }}")
t("is_test_precedence", "{{ 1 + 1 is number }} {{ not 1 is none }} {{ 'x' ~ 1 is string }}")
# filters
t("filter_tojson", "{{ d|tojson }}|{{ l|tojson }}|{{ 'é\"\\n\\u0001'|tojson }}|{{ none|tojson }}|{{ 1.0|tojson }}|{{ [true, false]|tojson }}", d=D, l=L)
t("filter_tojson_indent", "{{ d|tojson(indent=2) }}|{{ [1, [2, []], {}]|tojson(indent=4) }}|{{ d|tojson(indent=0) }}", d=D)
t("filter_tojson_options", "{{ d|tojson(sort_keys=true) }}|{{ 'é😀'|tojson(ensure_ascii=true) }}|{{ d|tojson(separators=(',', ':')) }}|{{ d|tojson(true) }}", d={"z": 1, "a": "é", "m": [1, 2]})
t("filter_tojson_floats", "{{ f|tojson }}", f=[0.1, 1.0, -0.0, 1e-07, 1.5e300, 123456789012345.0, 1e16, 1e15, 0.0001, 0.00001, 3.141592653589793, 2.5, 100.0, 1e22])
t("filter_trim", "[{{ '  a b \\n'|trim }}][{{ 'xxaxx'|trim('x') }}][{{ none|trim }}][{{ nope|trim }}][{{ '\u3000 wide\u00a0'|trim }}]")
t("filter_length", "{{ 'héllo😀'|length }} {{ l|length }} {{ d|length }} {{ nope|length }} {{ l|count }}", l=L, d=D)
t("filter_default", "{{ nope|default('dflt') }} {{ ''|default('e') }} {{ ''|default('e', true) }} {{ none|default('n') }} {{ x|d('y') }} [{{ nope|default }}] {{ 0|default(5, boolean=true) }}", x="set")
t("filter_string_case", "{{ 1|string }} {{ none|string }} {{ true|string ~ '!' }} {{ 'MiXed Ünï'|lower }} {{ 'mixed ünï'|upper }} {{ 'hello world-foo(bar)'|title }} {{ 'hELLO wORLD'|capitalize }}")
t("filter_items", "{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}{% for x in nope|items %}never{% endfor %}", d=D)
t("filter_join", "{{ l|join(', ') }} {{ ['a', 'b']|join }} {{ 'abc'|join('-') }} {{ [1, none, 'x']|join('|') }} {{ objs|join(',', attribute='n') }}", l=L, objs=[{"n": "p"}, {"n": "q"}])
t("filter_safe_misc", "{{ '<b>'|safe }} {{ l|first }} {{ l|last }} {{ 'abc'|first }} {{ l|list }} {{ 'ab'|list }} {{ '42'|int + 1 }} {{ '3.5'|float }} {{ 'x'|int }} {{ -3|abs }} {{ 'aXbX'|replace('X', '-') }} {{ l|reverse|list }} {{ 'abc'|reverse }}", l=L)
t("filter_escape", "{{ '<a href=\"x\">&\\'</a>'|e }}")
t("filter_chain", "{{ '  Hello  '|trim|lower|length }} {{ l|join(',')|upper }}", l=["a", "b"])
t("filter_selectattr_map", "{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }} {{ msgs|rejectattr('role', 'equalto', 'user')|list|length }} {{ msgs|map(attribute='role')|unique|list }}",
  msgs=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}])
# string methods
t("str_methods", "{{ s.startswith('He') }} {{ s.endswith('ld') }} {{ s.startswith(('x', 'H')) }} {{ s.split(' ') }} {{ s.split() }} {{ '  a  b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}", s="Hello World")
t("str_strip_methods", "[{{ '\\n\\nx\\n'.strip('\\n') }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}][{{ 'abcxcba'.strip('ab') }}][{{ '\\nx'.lstrip('\\n') }}]")
t("str_replace_case", "{{ 'aaa'.replace('a', 'b') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'ab'.replace('', '-') }} {{ 'Ab'.upper() }} {{ 'Ab'.lower() }} {{ \"they're bill's\".title() }} {{ 'hello'.capitalize() }}")
t("str_find_count_join", "{{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.find('z') }} {{ 'banana'.count('an') }} {{ '-'.join(['a', 'b']) }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }}")
t("str_think_split", "{% set c = m.split('</think>')[-1].lstrip('\\n') %}{% set r = m.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}[{{ r }}][{{ c }}]", m="<think>\nreason\n</think>\n\nanswer")
# dict methods
t("dict_methods", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.items()|list|length }} {% for k, v in d.items() %}{{ k }}:{{ v }},{% endfor %} {{ d.values()|list|length }}", d=D)
t("dict_method_attrs", "{{ d['items'] }} {{ d.s }} {{ d['c']['e'] }} {{ d.c.d }} {{ d.items is defined }}", d=D)
# indexing and slicing
t("index_slice", "{{ l[0] }} {{ l[-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ l[5:] }} {{ l[-10:2] }} {{ s[1] }} {{ s[-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s[::-2] }} {{ l.0 }}", l=[1, 2, 3, 4], s="héllo😀")
t("index_tuple_slice", "{{ (1, 2, 3)[1:] }} {{ (1, 2, 3)[::-1] }}")
# statements
t("for_loop_vars", "{% for x in l %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %}", l=["a", "b", "c"])
t("for_prev_next_cycle", "{% for x in l %}{{ loop.previtem }}>{{ x }}<{{ loop.nextitem }} {{ loop.cycle('odd', 'even') }};{% endfor %}", l=[1, 2, 3])
t("for_dict_and_else", "{% for k in d %}{{ k }},{% endfor %}{% for x in [] %}x{% else %}empty{% endfor %}{% for x in nope %}u{% else %}undef-empty{% endfor %}", d=D)
t("for_filter_if", "{% for x in l if x > 1 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}", l=[1, 2, 3, 0, 5])
t("for_unpack", "{% for a, b in [[1, 2], (3, 4)] %}{{ a }}-{{ b }} {% endfor %}{% for (k, v) in d.items() %}{{ k }}{% endfor %}", d={"x": 1, "y": 2})
t("for_nested_loop", "{% for i in [1, 2] %}{% for j in 'ab' %}{{ i }}{{ j }}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}")
t("for_string", "{% for ch in 'h😀é' %}[{{ ch }}]{% endfor %}")
t("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}")
t("range_fn", "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }}")
t("if_elif_else", "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}three{% else %}other{% endif %} {% endfor %}")
t("set_scoping", "{% set x = 1 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set y = 5 %}{% endif %}{{ y }}")
t("set_namespace", "{% set ns = namespace(count=0, found=false, last=none) %}{% for i in [1, 2, 3] %}{% set ns.count = ns.count + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.last }} {{ ns.nothing is defined }}")
t("set_block_and_tuple", "{% set blk %}a{{ 1 + 1 }}b{% endset %}{{ blk }}|{{ blk|length }}{% set p, q = [1, 2] %}{{ p }}{{ q }}{% set tup = 1, 2 %}{{ tup }}")
t("set_dict_literal_global", "{% set d = dict(a=1, b='x') %}{{ d }} {{ d.a }}")
t("comments", "a{# comment #}b{#- trimmed -#}  c\n{# line comment #}\nd")
t("whitespace_control", "a  {{- 'b' -}}  c {%- if true -%}  d  {%- endif -%} e\n  {{ 'f' }}\n")
t("trim_lstrip_blocks", "<ul>\n    {% for x in l %}\n    <li>{{ x }}</li>\n    {% endfor %}\n</ul>\n  {% if true %}\nyes\n  {% endif %}\nend", l=[1, 2])
t("lstrip_plus_and_minus_end", "  {%+ if true %}kept-indent{% endif %}\n  {% if true +%}\nno-trim{% endif %}\nx {% if true -%}\n\n   y{% endif %}")
t("lstrip_not_for_vars", "line\n    {{ 'v' }}\n    {# c #}\n    {% if true %}b{% endif %}\n")
t("text_crlf_and_trailing_newline", "a\r\nb\rc{% if true %}\r\nd{% endif %}\n")
t("unicode_whitespace_control", "a\u00a0\u3000 {%- if true -%}\u3000\u00a0b\n\u3000 {% if true %}\u2028c{% endif %}\n\u00a0{{- 'd' -}}\u00a0 e")
t("raw_block", "{% raw %}{{ not rendered }}{% endraw %}|  {% raw -%}  x  {%- endraw %}|")
t("generation_block", "{% for m in ['a', 'b'] %}{% generation %}<{{ m }}>{% endgeneration %}{% endfor %}")
t("multiline_tag", "{{\n  'a' +\n  'b'\n}}{%\n  if true\n%}\nc{% endif %}")
t("raise_exception", "{% if x %}{{ raise_exception('Bad input: ' ~ x) }}{% endif %}ok", x="boom")
t("strftime_year", "{{ strftime_now('%Y')|length }}")
t("tools_none_default", "{{ tools is none }} {{ tools is defined }} {{ documents }} {{ add_generation_prompt }} {{ messages|length }}")
t("python_bool_render", "{{ ns }}|{{ (1 == 1) }}|{{ [1 == 1, none] }}", ns=False)
t("macro_basic", "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', '?') }} {{ greet(punct='.', name='c') }} [{{ greet() }}] {{ greet('x')|length }}")
t("macro_scope", "{% set top = 'T' %}{% macro m(x) %}{{ top }}{{ x }}{{ loopvar is defined }}{% set top = 'inner' %}{% endmacro %}{% for loopvar in [1] %}{{ m(loopvar) }}{% endfor %}{{ top }}")
t("macro_loops_and_recursion_free", "{% macro render(d, skip) %}{% for k in d if k not in skip %}<{{ k }}>{{ d[k]|tojson if d[k] is mapping else d[k]|string }}</{{ k }}>{% endfor %}{% endmacro %}{{- render({'a': 1, 'b': {'c': [1, 2.5]}, 'name': 'x'}, ['name']) }}")
t("macro_whitespace", "{% macro m() %}\n  line\n{% endmacro %}\n[{{ m() }}]\n{%- macro n() -%}  trimmed  {%- endmacro -%}[{{ n() }}]")
t("macro_defined_later_in_if", "{% if false %}{% macro m() %}x{% endmacro %}{% endif %}{{ m is defined }}")
# runtime errors (both must fail)
t("err_undefined_attr", "{{ nope.attr }}")
t("err_str_plus_int", "{{ 'a' + 1 }}")
t("err_int_plus_str", "{{ 1 + 'a' }}")
t("err_div_zero", "{{ 1 / 0 }}")
t("err_in_none", "{{ 'a' in none }}")
t("err_iterate_int", "{% for x in 5 %}{% endfor %}")
t("err_tojson_undefined", "{{ nope|tojson }}")
t("err_set_attr_non_namespace", "{% set d = {} %}{% set d.x = 1 %}")
t("err_order_mixed", "{{ 1 < 'a' }}")
t("err_call_undefined_method_of_undefined", "{{ nope.startswith('a') }}")
t("err_items_non_mapping", "{{ [1]|items|list }}")
t("err_unpack_count", "{% for a, b in [[1, 2, 3]] %}{% endfor %}")
t("err_macro_too_many_args", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}")
t("err_macro_called_before_definition", "{{ m() }}{% macro m() %}{% endmacro %}")

print(json.dumps({"units": units}, ensure_ascii=False, indent=1))
