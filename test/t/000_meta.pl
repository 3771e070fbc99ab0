# META.json follows the PGXN meta spec 1.0.0 and agrees with sessrev.control;
# README, CHANGELOG, LICENSE, META.json and the test matrix agree on the
# release and on the PostgreSQL versions tested.
use strict;
use warnings;
use JSON::PP;
use File::Basename qw(dirname);
use Test::More;

my $top = dirname(__FILE__) . '/../..';
open my $fh, '<', "$top/META.json" or die "META.json: $!";
my $meta = decode_json(do { local $/; <$fh> });
open my $ctl, '<', "$top/sessrev.control" or die "sessrev.control: $!";
my ($default_version) = map { /^default_version\s*=\s*'([^']+)'/ ? $1 : () } <$ctl>;

for my $key (qw(name abstract version maintainer license provides meta-spec)) {
	ok(exists $meta->{$key}, "META.json has required key $key");
}
is($meta->{'meta-spec'}{version}, '1.0.0', 'meta-spec version is 1.0.0');
like($meta->{version}, qr/^\d+\.\d+\.\d+$/, 'distribution version is semantic');
is($meta->{name}, 'sessrev', 'distribution is named sessrev');
my $ext = $meta->{provides}{sessrev};
ok($ext, 'META.json provides the sessrev extension');
like($ext->{version}, qr/^\Q$default_version\E\.\d+$/, 'provided version matches default_version');
ok(-f "$top/$ext->{file}", "provided file $ext->{file} exists");
ok(-f "$top/sql/sessrev--$default_version.sql", 'the default version has an install script');

sub slurp { my ($f) = @_; open my $h, '<', "$top/$f" or die "$f: $!"; local $/; return <$h>; }

is($meta->{license}, 'postgresql', 'META.json declares the PostgreSQL License');
like(slurp('LICENSE'), qr/\APostgreSQL License\n\nCopyright \(c\) \d{4}/, 'LICENSE is the PostgreSQL License');
ok($meta->{resources}{bugtracker}, 'META.json names where to report bugs');

# A patch release (1.2.1: a new library, the same SQL) has a section of its
# own; a minor release's section is named without its .0.
my ($newest) = slurp('CHANGELOG.md') =~ /^## (\S+)/m;
(my $release = $meta->{version}) =~ s/\.0$//;
is($newest, $release, 'the newest CHANGELOG section is the distribution version');
like($newest, qr/^\Q$default_version\E(\.\d+)?$/, 'and belongs to the default_version');
is($ext->{version}, $meta->{version}, 'the extension is provided at the distribution version');

my @tested = @{ $meta->{x_tested_postgresql} || [] };
ok(@tested, 'META.json lists the PostgreSQL versions tested');
my @readme_tested = slurp('README.md') =~ /^\| (\d+) \| tested on every commit /mg;
is("@readme_tested", "@tested", 'README lists as tested exactly the versions META.json does');
my @matrix = slurp('test/matrix') =~ /^run_suite "PostgreSQL (\d+) /mg;
my %seen;
my @matrix_versions = grep { !$seen{$_}++ } @matrix;
is(join(' ', sort { $a <=> $b } @matrix_versions), "@tested", 'the test matrix runs exactly those versions');
like($meta->{prereqs}{runtime}{requires}{PostgreSQL}, qr/^\Q$tested[0]\E\./,
	'the oldest version tested is the minimum required');
done_testing();
