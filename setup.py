"""Packaging for mlops_nb: everything is read from settings.ini (nbdev 2 convention).

Unlike nbdev's template this does not import `pkg_resources` (gone from current setuptools).
The stage notebooks in `nbs/` ship inside the wheel as `mlops_nb.stage_nbs`, so an installed
`mlops-nb run STAGE` works in any project, not only in this source tree.
"""
import shlex
from configparser import ConfigParser
from pathlib import Path
import setuptools

here = Path(__file__).parent
config = ConfigParser(delimiters=['='])
config.read(here/'settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

licenses = {'apache2': 'Apache-2.0'}  # SPDX expression (license classifiers are deprecated)
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
readme = here/'README.md'

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else cfg['description'],
    long_description_content_type='text/markdown',
    license=licenses[cfg['license']],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title(),
                 'Programming Language :: Python :: 3.11'],
    url=cfg['git_url'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    keywords=cfg['keywords'],
    python_requires='>=' + cfg['min_python'],
    packages=['mlops_nb', 'mlops_nb.stage_nbs'],
    package_dir={'mlops_nb': cfg['lib_path'], 'mlops_nb.stage_nbs': cfg['nbs_path']},
    package_data={'mlops_nb.stage_nbs': ['[0-9]*.ipynb'],
                  # nbconvert templates of the report (stage pages): mlops_nb/templates/<name>/{conf.json,*.j2,static/*}
                  'mlops_nb': ['templates/*/*.json', 'templates/*/*.j2', 'templates/*/static/*']},
    include_package_data=False,
    install_requires=requirements,
    extras_require={'dev': dev_requirements},
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False,
)
