# The documentation holds together: README.md stays short enough to follow
# (at most 400 lines), and every relative link of README.md, CONTRIBUTING.md,
# SECURITY.md, CHANGELOG.md, docs/*.md and bench/*.md names a file of the tree
# and, with a #fragment, a heading of that file (GitHub's anchors).
use strict;
use warnings;
use File::Basename qw(dirname);
use Test::More;

my $top = dirname(__FILE__) . '/../..';
sub slurp { my ($f) = @_; open my $h, '<', $f or die "$f: $!"; local $/; return <$h>; }

my $readme_lines = () = slurp("$top/README.md") =~ /\n/g;
cmp_ok($readme_lines, '<=', 400, "README.md is $readme_lines lines");

# GitHub's anchor of a heading: lower case, punctuation but - and _ dropped,
# spaces to hyphens.
sub anchors {
	my ($file) = @_;
	my (%a, $fence);
	for (split /\n/, slurp($file)) {
		$fence = !$fence if /^```/;
		next if $fence || !/^#+ (.*)$/;
		(my $slug = lc $1) =~ s/[^\w\- ]//g;
		$slug =~ s/ /-/g;
		$a{$slug} = 1;
	}
	return \%a;
}

my @docs = grep { -f } map { "$top/$_" } ('README.md', 'CONTRIBUTING.md', 'SECURITY.md', 'CHANGELOG.md');
push @docs, glob("$top/docs/*.md"), glob("$top/bench/*.md");
my $links = 0;
for my $doc (@docs) {
	(my $name = $doc) =~ s{^\Q$top\E/}{};
	my $text = slurp($doc);
	$text =~ s/^```.*?^```//msg;   # code blocks hold no links
	while ($text =~ /\]\(([^)\s]+)\)/g) {
		my $target = $1;
		next if $target =~ m{^[a-z]+://|^mailto:};
		$links++;
		my ($path, $fragment) = split /#/, $target, 2;
		my $file = $path eq '' ? $doc : dirname($doc) . "/$path";
		if (!-e $file) {
			fail("$name: link to $target: no such file");
			next;
		}
		next unless defined $fragment && $file =~ /\.md$/;
		ok(anchors($file)->{$fragment}, "$name: link to $target: the heading exists");
	}
}
cmp_ok($links, '>', 20, "$links relative links checked");
done_testing();
